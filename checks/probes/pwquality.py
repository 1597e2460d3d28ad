"""Run on a host: ask the host's libpwquality (the library pam_pwquality calls, reading the
effective configuration: pwquality.conf and pwquality.conf.d) to judge three passwords made
here from the role's minimum length and classes. Prints JSON: per case, the library's score or
error code and its message. Nothing is written.
"""

import ctypes
import json
import secrets
import string
import sys

minlen, minclass = int(sys.argv[1]), int(sys.argv[2])
lib = ctypes.CDLL("libpwquality.so.1")
lib.pwquality_default_settings.restype = ctypes.c_void_p
lib.pwquality_read_config.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.c_void_p)]
lib.pwquality_check.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.pwquality_strerror.restype = ctypes.c_char_p
lib.pwquality_strerror.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                   ctypes.c_void_p]
settings = lib.pwquality_default_settings()
aux = ctypes.c_void_p()
if lib.pwquality_read_config(settings, None, ctypes.byref(aux)) != 0:
    sys.exit("pwquality_read_config failed")


def made(length: int, classes: list[str]) -> str:
    # Distinct characters, the classes interleaved: no repeat or sequence rule is what refuses.
    pools = [list(c) for c in classes]
    for pool in pools:
        secrets.SystemRandom().shuffle(pool)
    return "".join(pools[i % len(pools)].pop() for i in range(length))


def judge(password: str) -> list[object]:
    aux = ctypes.c_void_p()
    code = lib.pwquality_check(settings, password.encode(), None, b"nobody", ctypes.byref(aux))
    buf = ctypes.create_string_buffer(256)
    said = lib.pwquality_strerror(buf, len(buf), code, aux) if code < 0 else b""
    return [code, said.decode(errors="replace")]


every = [string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%&()*+,-./:;<=>?@^_~"]
print(json.dumps({
    "short": judge(made(minlen - 1, every)),
    "few_classes": judge(made(minlen + 4, every[:minclass - 1])),
    "strong": judge(made(minlen + 4, every)),
}))

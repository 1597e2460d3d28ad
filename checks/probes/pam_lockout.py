"""Run on a host, as root: drive its real PAM stack (the sshd service) with wrong passwords for
an account that has none (``nobody``), until pam_faillock locks it, then reset its tally.

Prints JSON: the messages PAM gave each attempt, the tally ``faillock`` showed while locked and
after the reset. Nothing persists but the tally under /run (reset) and the auth log entries.
"""

import ctypes
import json
import subprocess
import sys

SERVICE, USER = b"sshd", b"nobody"
FAILLOCK = "/usr/sbin/faillock"  # Debian 12, libpam-modules-bin
PROMPT_ECHO_OFF, PROMPT_ECHO_ON = 1, 2

libc = ctypes.CDLL(None)
libc.calloc.restype = ctypes.c_void_p
libc.strdup.restype = ctypes.c_void_p
libpam = ctypes.CDLL("libpam.so.0")


class Message(ctypes.Structure):
    _fields_ = [("style", ctypes.c_int), ("text", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(Message)),
                        ctypes.POINTER(ctypes.POINTER(Response)), ctypes.c_void_p)


class Conversation(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata", ctypes.c_void_p)]


def attempt() -> tuple[int, list[str]]:
    said: list[str] = []

    def converse(count, messages, responses, _data):  # type: ignore[no-untyped-def]
        array = libc.calloc(count, ctypes.sizeof(Response))
        responses[0] = ctypes.cast(array, ctypes.POINTER(Response))
        for i in range(count):
            message = messages[i].contents
            if message.style in (PROMPT_ECHO_OFF, PROMPT_ECHO_ON):
                responses[0][i].resp = libc.strdup(b"not-the-password")
            elif message.text:
                said.append(message.text.decode(errors="replace"))
        return 0

    callback = CONV(converse)
    handle = ctypes.c_void_p()
    conversation = Conversation(callback, None)
    if libpam.pam_start(SERVICE, USER, ctypes.byref(conversation), ctypes.byref(handle)) != 0:
        sys.exit("pam_start failed")
    code = libpam.pam_authenticate(handle, 0)
    libpam.pam_end(handle, code)
    return code, said


def tally() -> str:
    return subprocess.run([FAILLOCK, "--user", USER.decode()], capture_output=True, text=True,
                          check=False).stdout


subprocess.run([FAILLOCK, "--user", USER.decode(), "--reset"], check=True)
try:
    attempts = [attempt() for _ in range(int(sys.argv[1]) + 1)]
    locked = tally()
finally:
    subprocess.run([FAILLOCK, "--user", USER.decode(), "--reset"], check=True)
released = attempt()
subprocess.run([FAILLOCK, "--user", USER.decode(), "--reset"], check=True)
print(json.dumps({"attempts": attempts, "tally_locked": locked, "after_reset": released,
                  "tally_after": tally()}))

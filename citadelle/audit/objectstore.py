"""Object storage (Swift) in the cloud audit: where it is, whether it encrypts, who can read.

Conformance: the catalog's object-store endpoints are allow-listed and https (SecNumCloud 19.2,
10.2); encryption at rest is on (10.1), read from the admin section of Swift's /info, which the
provider opens to the audit with its signing key (``CITADELLE_SWIFT_INFO_KEY``; without it the
check says not-checked, never pass); no container of the project is public (10.1, 13.2: a
referrer ACL ``.r:`` lets anyone read). Drift: a live container the plan does not declare, or a
declared one that became public or writable by others.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Mapping
from hashlib import sha1
from typing import Any
from urllib.parse import urlsplit

from citadelle.audit.model import Result, Severity, Status, audit_rule

INFO_KEY_ENV = "CITADELLE_SWIFT_INFO_KEY"

OBJECT_STORE = audit_rule(
    "object-store-endpoint",
    "The object store's endpoints are allow-listed and served over https",
    ("19.2", "19.6", "10.2"),
    Severity.HIGH,
    "Use the provider's EU object-storage endpoint over https, declared as the object-storage "
    "endpoint of citadelle:sovereignty.",
)
OBJECT_ENCRYPTION = audit_rule(
    "object-encryption",
    "Objects are encrypted at rest (Swift encryption middleware enabled)",
    ("10.1",),
    Severity.HIGH,
    "Ask the provider to enable Swift's encryption middleware with a KMS-held root secret, and "
    "to give the audit the /info signing key.",
)
PUBLIC_CONTAINER = audit_rule(
    "no-public-container",
    "No container of the project is readable without credentials",
    ("10.1", "13.2"),
    Severity.HIGH,
    "Remove the referrer ACL (.r:) from the container's read ACL.",
)
DRIFT_CONTAINER = audit_rule(
    "drift-container",
    "A container the plan does not declare, or a declared one whose ACLs changed",
    ("12.2", "10.1"),
    Severity.HIGH,
    "Delete or declare the container; restore the declared (empty) ACLs.",
)


def object_store_urls(endpoints: Iterable[Any]) -> list[str]:
    return sorted({e.url for e in endpoints if e.service_type == "object-store"})


def check_endpoints(endpoints: Iterable[Any], allows_host: Any) -> list[Result]:
    urls = object_store_urls(endpoints)
    if not urls:
        return [Result(OBJECT_STORE, Status.FAIL, "no object-store endpoint in the catalog")]
    bad = [u for u in urls if urlsplit(u).scheme != "https"
           or not allows_host((urlsplit(u).hostname or "").lower())]
    if bad:
        return [Result(OBJECT_STORE, Status.FAIL, f"not allow-listed or not https: {bad}")]
    return [Result(OBJECT_STORE, Status.PASS, f"{len(urls)} endpoint(s), allow-listed, https")]


def info_signature(key: str, expires: int, method: str = "GET", path: str = "/info") -> str:
    """Swift's HMAC-SHA1 signature of an admin /info request (its own scheme, not ours)."""
    message = f"{method}\n{expires}\n{path}".encode()
    return hmac.new(key.encode(), message, sha1).hexdigest()


def check_encryption(store: Any, root_url: str, key: str | None) -> list[Result]:
    if not key:
        return [Result(OBJECT_ENCRYPTION, Status.NOT_CHECKED,
                       f"encryption is in /info's admin section only; set {INFO_KEY_ENV} to the "
                       "provider's /info signing key to check it")]
    expires = int(time.time()) + 60
    response = store.get(f"{root_url}/info", params={
        "swiftinfo_sig": info_signature(key, expires), "swiftinfo_expires": str(expires)},
        raise_exc=False)
    if response.status_code != 200:
        return [Result(OBJECT_ENCRYPTION, Status.FAIL,
                       f"signed /info answered HTTP {response.status_code}")]
    admin = response.json().get("admin", {})
    enabled = bool(admin.get("encryption", {}).get("enabled"))
    if not enabled:
        return [Result(OBJECT_ENCRYPTION, Status.FAIL, "encryption middleware not enabled")]
    return [Result(OBJECT_ENCRYPTION, Status.PASS,
                   "encryption middleware enabled (admin section of the signed /info)")]


def container_acls(store: Any) -> dict[str, dict[str, str]]:
    """Every container of the project with its read and write ACLs."""
    acls: dict[str, dict[str, str]] = {}
    for container in store.containers():
        meta = store.get_container_metadata(container)
        acls[container.name] = {"read": meta.read_ACL or "", "write": meta.write_ACL or ""}
    return acls


def is_public(read_acl: str) -> bool:
    return any(item.strip().startswith(".r:") for item in read_acl.split(","))


def check_public(acls: Mapping[str, Mapping[str, str]]) -> list[Result]:
    public = sorted(name for name, acl in acls.items() if is_public(acl["read"]))
    if public:
        return [Result(PUBLIC_CONTAINER, Status.FAIL, f"public: {name} (read ACL "
                       f"{acls[name]['read']!r})", resource=name) for name in public]
    return [Result(PUBLIC_CONTAINER, Status.PASS, f"{len(acls)} containers, none public")]


def compare_containers(declared: Mapping[str, Mapping[str, str]],
                       live: Mapping[str, Mapping[str, str]]) -> list[Result]:
    """Drift of the project's containers against the plan's (name -> declared ACLs)."""
    results = []
    for name in sorted(live):
        acl = live[name]
        if name not in declared:
            state = ", public" if is_public(acl["read"]) else ""
            results.append(Result(DRIFT_CONTAINER, Status.FAIL,
                                  f"container {name}: live, not declared{state}", resource=name))
        elif (acl["read"], acl["write"]) != (declared[name]["read"], declared[name]["write"]):
            results.append(Result(DRIFT_CONTAINER, Status.FAIL,
                                  f"container {name}: ACLs read {acl['read']!r} write "
                                  f"{acl['write']!r}, declared read {declared[name]['read']!r} "
                                  f"write {declared[name]['write']!r}", resource=name))
    return results


def info_key() -> str | None:
    return os.environ.get(INFO_KEY_ENV) or None

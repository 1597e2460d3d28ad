"""The write freeze at the source: stored access policies, the Azure mechanism that revokes SAS.

Writers of a migrating workspace hold only SAS tokens bound to the container's stored access
policy ``citadelle-write`` (never the account key); readers hold tokens of ``citadelle-read``.
Freezing removes ``citadelle-write`` from the container: every token bound to it is refused
(HTTP 403; AuthorizationFailure on Azurite) from then on, while reads go on. A container lease
would not do it: it only stops the container's deletion, never blob writes. Azure may take up
to 30 s to apply a policy change, so the freeze is proven, not assumed: a write with a token of
the revoked policy is retried until refused, within the workspace's freeze budget.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.migrate.context import SourceAccess
from citadelle.migrate.inventory import source_client

WRITE_POLICY = "citadelle-write"
READ_POLICY = "citadelle-read"
PROBE = ".citadelle-freeze-probe"
# Azure allows a stored access policy up to this long; the writers' tokens are renewed within.
POLICY_DAYS = 365


def _policies(write: bool) -> dict[str, Any]:
    from azure.storage.blob import AccessPolicy, ContainerSasPermissions  # noqa: PLC0415

    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    expiry = start + datetime.timedelta(days=POLICY_DAYS)
    policies = {READ_POLICY: AccessPolicy(ContainerSasPermissions(read=True, list=True),
                                          expiry=expiry, start=start)}
    if write:
        policies[WRITE_POLICY] = AccessPolicy(
            ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True,
                                    list=True), expiry=expiry, start=start)
    return policies


def policy_ids(source: SourceAccess, container: str) -> set[str]:
    client = source_client(source).get_container_client(container)
    return {p.id for p in client.get_container_access_policy()["signed_identifiers"]}


def set_writable(source: SourceAccess, container: str, writable: bool) -> None:
    """Publish the read policy, and the write policy unless frozen (idempotent)."""
    client = source_client(source).get_container_client(container)
    client.set_container_access_policy(signed_identifiers=_policies(writable))


def sas_url(source: SourceAccess, container: str, policy: str) -> str:
    """A container SAS URL bound to ``policy``: what writers (or readers) are given."""
    from azure.storage.blob import generate_container_sas  # noqa: PLC0415

    token = generate_container_sas(source.account, container, account_key=source.key,
                                   policy_id=policy)
    return f"{source.url}/{container}?{token}"


def error_code(err: Exception) -> str:
    """Azure's ``x-ms-error-code`` (the SDK gives an enum member, or the header's text)."""
    code = getattr(err, "error_code", None)
    return str(getattr(code, "value", code or ""))


@dataclass(frozen=True)
class Proof:
    refused_at: str
    attempts: int
    status: int
    error_code: str
    seconds: float


def prove_frozen(source: SourceAccess, container: str, budget: float) -> Proof:
    """Write with a token of the revoked write policy until refused; fail past the budget."""
    from azure.core.exceptions import HttpResponseError  # noqa: PLC0415
    from azure.storage.blob import ContainerClient  # noqa: PLC0415

    client = ContainerClient.from_container_url(
        sas_url(source, container, WRITE_POLICY),
        connection_verify=str(source.ca_file) if source.ca_file else True,
        retry_total=0)
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            client.upload_blob(PROBE, b"write after the freeze", overwrite=True)
        except HttpResponseError as err:
            code = error_code(err)
            if err.status_code == 403:
                return Proof(datetime.datetime.now(datetime.UTC).isoformat(
                    timespec="milliseconds"), attempts, 403, code,
                    round(time.monotonic() - started, 3))
            raise CitadelleError(f"freeze proof on {container}: unexpected HTTP "
                                 f"{err.status_code} ({code})") from None
        # Accepted: the policy change is not applied yet. The probe is removed with the
        # account key so that it never reaches the destination.
        source_client(source).get_blob_client(container, PROBE).delete_blob()
        if time.monotonic() - started > budget:
            raise CitadelleError(f"freeze of {container}: writes still accepted after "
                                 f"{budget:.0f} s (the freeze budget); writers are not frozen")
        time.sleep(1)

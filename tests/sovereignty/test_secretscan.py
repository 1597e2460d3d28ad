"""No secret in clear in the repository or the offline plans; the scanner catches planted ones.

Every sample is generated here at run time (random, never committed): the repository scan
below would otherwise find them.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from citadelle import paths
from citadelle.cli import main
from citadelle.sovereignty.secretscan import repo_files, scan_data, scan_file, scan_paths, scan_plan

pytestmark = [pytest.mark.unit, pytest.mark.snc("10.5.a", "19.6.c")]

ENVIRONMENTS = ("dev", "mirror", "prod")


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


_ALNUM = string.ascii_letters + string.digits
_UPPER32 = string.ascii_uppercase + "234567"


def _pem_rsa() -> str:
    key = generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _openssh_ed25519() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()


def _jwt() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': 'svc'})}.{signature}"


# (file name, content, rule expected, line, the secret itself)
Sample = tuple[str, str, str, int, str]


def _sample(name: str, template: str, secret: str, rule: str, line: int) -> Sample:
    return name, template.format(secret=secret), rule, line, secret


def _indented(pem: str) -> str:
    return "".join(f"    {x}\n" for x in pem.splitlines())


PLANTED: dict[str, Callable[[], Sample]] = {
    "pem-private-key": lambda: _sample("key.pem", "{secret}", _pem_rsa(), "private-key", 1),
    "openssh-private-key": lambda: _sample("id_ed25519", "{secret}", _openssh_ed25519(),
                                           "private-key", 1),
    "private-key-in-yaml": lambda: _sample("vars.yml", "tls:\n  key: |\n{secret}",
                                           _indented(_pem_rsa()), "private-key", 3),
    "aws-access-key-id": lambda: _sample("env.sh", "export AWS_ACCESS_KEY_ID={secret}\n",
                                         "AKIA" + _random(_UPPER32, 16), "aws-access-key-id",
                                         1),
    "aws-secret-key": lambda: _sample("credentials.ini",
                                      "[default]\naws_secret_access_key = {secret}\n",
                                      _random(_ALNUM + "/+", 40), "secret-assignment", 2),
    "github-token": lambda: _sample("ci.yml", "env:\n  GH: {secret}\n",
                                    "ghp_" + _random(_ALNUM, 36), "github-token", 2),
    "pulumi-token": lambda: _sample("notes.md", "token {secret}\n",
                                    "pul-" + secrets.token_hex(20), "pulumi-access-token", 1),
    "vault-token": lambda: _sample("run.log", "login ok {secret}\n",
                                   "hvs." + _random(_ALNUM, 90), "vault-token", 1),
    "jwt": lambda: _sample("requests.log", "Authorization: Bearer {secret}\n", _jwt(), "jwt",
                           1),
    "password-yaml": lambda: _sample("group_vars.yml", "db_user: app\ndb_password: {secret}\n",
                                     secrets.token_urlsafe(12), "secret-assignment", 2),
    "placeholder-password": lambda: _sample("defaults.yml", "admin_password: {secret}\n",
                                            "changeme", "secret-assignment", 1),
    "password-python": lambda: _sample("settings.py", 'API_TOKEN = "{secret}"\n',
                                       secrets.token_urlsafe(24), "secret-assignment", 1),
    "high-entropy-signing-key": lambda: _sample("app.toml", 'signing_key = "{secret}"\n',
                                                secrets.token_urlsafe(32),
                                                "high-entropy-assignment", 1),
    "url-credentials": lambda: _sample("inventory.ini",
                                       "repo=https://deploy:{secret}@git.example.org/x\n",
                                       secrets.token_urlsafe(12), "url-credentials", 1),
}


@pytest.mark.parametrize("sample", PLANTED.values(), ids=list(PLANTED))
def test_scanner_catches_planted_secret(sample, tmp_path):
    name, content, rule, line, _ = sample()
    target = tmp_path / name
    target.write_text(content)
    findings = scan_file(target, tmp_path)
    assert [(f.rule, f.where) for f in findings] == [(rule, f"{name}:{line}")]


@pytest.mark.parametrize("sample", PLANTED.values(), ids=list(PLANTED))
def test_cli_reports_without_printing_the_secret(sample, tmp_path, capsys):
    name, content, rule, _, secret = sample()
    target = tmp_path / name
    target.write_text(content)
    assert main(["secretscan", str(target), "--json", str(tmp_path / "findings.json")]) == 1
    out = capsys.readouterr().out
    assert f": {rule}: " in out
    assert out.rstrip().endswith(f"secretscan: 1 finding(s) in {target}")
    assert secret.strip()[4:] not in out
    assert secret.strip()[4:] not in (tmp_path / "findings.json").read_text()


def test_secret_payload_in_clear_in_a_recording_is_found():
    recording = {"resources": [{"type": "openstack:keymanager/secretV1:SecretV1",
                                "inputs": {"payload": secrets.token_urlsafe(32),
                                           "payloadContentType": "application/octet-stream"}}]}
    findings = scan_data(recording, "plan dev")
    assert [(f.rule, f.where) for f in findings] == [
        ("secret-assignment", "plan dev:resources[0].inputs.payload")]


@pytest.mark.parametrize(
    "line",
    [
        "password: \"{{ vault_db_password }}\"",
        "ansible_become_password: \"{{ lookup('ansible.builtin.file', '/run/pw') }}\"",
        "secretsprovider: passphrase",
        "db_password: ${DB_PASSWORD}",
        "PULUMI_CONFIG_PASSPHRASE_FILE: /run/secrets/pulumi-dev",
        "token_ttl: 3600",
        "password_max_age: 90",
        "    secure: v1:Zm9vYmFyYmF6cXV4:v1:c2FsdHNhbHRzYWx0c2FsdA==:ZW5jcnlwdGVkZGF0YQ==",
        "encryptedkey: dmF1bHQ6djE6YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=",
        "payload: '[secret]'",
        "bp028_accounts_pwquality_minlen: 15",
        "--hash=sha256:13b2beaad985e05e2d6407ee4c4f35590b11f8d693a258a561055cac8f64cab7",
        "SECRET = \"openstack:keymanager/secretV1:SecretV1\"",
        "a private key was given; only public keys belong in stack config",
        # Split so that the source itself never looks like a tracked key.
        "-----BEGIN OPENSSH " "PRIVATE KEY----- x",
        "admin_password: pw-one",
        '({"password": "wrong-password"}, "authentication refused (HTTP 401)")',
    ],
)
def test_references_and_look_alikes_are_not_findings(line, tmp_path):
    target = tmp_path / "sample.yml"
    target.write_text(line + "\n")
    assert scan_file(target, tmp_path) == []


def test_ssh_public_keys_are_not_findings(tmp_path):
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    target = tmp_path / "keys.yml"
    target.write_text(f"sshKeys:\n  - name: ops\n    publicKey: \"{public} ops@host\"\n")
    assert scan_file(target, tmp_path) == []


def test_repository_has_no_secret_in_clear():
    files = repo_files()
    assert paths.PROJECT_FILE in files and len(files) > 50
    findings = scan_paths(files, paths.REPO_ROOT)
    assert findings == [], "\n".join(f"{f.where}: {f.rule}: {f.detail}" for f in findings)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_offline_plan_records_no_secret_in_clear(env):
    assert scan_plan(env) == []


def test_scanning_a_directory_of_run_logs(tmp_path):
    logs = tmp_path / "runs" / "2026-11-28T19-00-00Z"
    logs.mkdir(parents=True)
    (logs / "pulumi-up.log").write_text("Updating (prod)\nResources: 12 unchanged\n")
    leaked = logs / "ansible.log"
    leaked.write_text(f"TASK [x] ok\nlogin: db_password={secrets.token_urlsafe(16)}\n")
    findings = scan_paths([tmp_path / "runs"], tmp_path)
    assert [(f.rule, f.where) for f in findings] == [
        ("secret-assignment", str(Path("runs") / logs.name / "ansible.log") + ":2")]

"""Find secrets in clear: in the repository, in recorded plans, in state exports and run logs.

A precise scanner rather than a noisy one: each rule matches a format that is a secret by
construction (PEM private keys, cloud and forge tokens with their fixed prefixes, credentials in
URLs), or a literal assigned to a name that says "secret" (``db_password: ...``,
``API_TOKEN = "..."``), or a high-entropy literal under such a name. Values that only point at a
secret (Jinja/shell templates, ``lookup(...)``, ``secure:`` ciphertexts, masked recordings, file
paths, environment variable names) are not findings. Findings never print the secret itself.

SecNumCloud 10.x (secrets protection) and 12.x: no credential in clear in git, state or logs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.errors import CitadelleError
from citadelle.plan.plan import plan_environment
from citadelle.sovereignty import walk


@dataclass(frozen=True)
class SecretFinding:
    rule: str
    where: str  # path:line, or plan ENV:<urn path>
    detail: str  # redacted: never the secret itself

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class TokenRule:
    id: str
    description: str
    pattern: re.Pattern[str]


TOKEN_RULES: tuple[TokenRule, ...] = (
    TokenRule("private-key", "PEM or OpenSSH private key block",
              # The header with its base64 body (or alone at the end of a line, as in a key file):
              # a bare header inside a sentence or a test of a refusal is no key.
              re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                         r"(?:\s*$|\\n|\s*[A-Za-z0-9+/=]{20,})")),
    TokenRule("aws-access-key-id", "AWS-style access key id",
              re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b")),
    TokenRule("github-token", "GitHub token",
              re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b")),
    TokenRule("gitlab-token", "GitLab personal access token",
              re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    TokenRule("slack-token", "Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    TokenRule("pulumi-access-token", "Pulumi Cloud access token",
              re.compile(r"\bpul-[a-f0-9]{40}\b")),
    TokenRule("vault-token", "Vault/OpenBao token",
              re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}\b")),
    TokenRule("jwt", "JSON Web Token",
              re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
)

# A name that says its value is a secret: the word ends the name (db_password, apiToken), so
# password_max_age, token_ttl or secretsprovider are not secrets.
_SENSITIVE = (
    r"password|passwd|passphrase|secret|token|api_?key|access_?key|secret_?key|private_?key|"
    r"client_?secret|auth_?key|credentials?"
)
SENSITIVE_NAME = re.compile(rf"(?i)(?:{_SENSITIVE})$")
ENTROPY_NAME = re.compile(r"(?i)(key|secret|token|pass|pwd|cred|auth|salt|cookie|session)")
# name [:=] value, in YAML, ini, env files, shell, Python/TOML (quoted) and JSON.
# A lookahead so that "login: db_password=..." yields both assignments.
ASSIGNMENT = re.compile(
    r"""(?<![\w.-])(?=(?P<name>[A-Za-z_][\w.-]*)["']?\s*(?::|=|:=)\s*(?P<q>["']?)"""
    r"""(?P<value>[^"'\s#,;}]*)(?P=q))"""
)
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<user>[^/\s:@'\"]+):(?P<pw>[^/\s@'\"]+)@")
_TEMPLATE = re.compile(
    r"\{\{.*\}\}|^\$\{|^\$[A-Za-z_]\w*$|^%\(\w+\)s$|^<[^>]+>$|lookup\(|^\{[^{}]+\}$"
)
# Self-describing wrong credentials, as tests of a refusal use them.
_INVALID_ON_PURPOSE = re.compile(
    r"(?i)^(wrong|bad|invalid|fake|dummy|not-a|expired|revoked)[-_]?"
    r"(password|passphrase|secret|token|key|credentials?)$"
)
_PATH = re.compile(r"^(/|\./|~/)[\w.@-]+(/[\w.@-]*)*$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
# Code and prose: a bare word after "password:" is a variable or a sentence, not a literal.
_CODE_SUFFIXES = {".py", ".pyi", ".js", ".ts", ".go", ".rs", ".java", ".md", ".rst", ".txt",
                  ".html"}
_NOT_VALUES = {"", "true", "false", "yes", "no", "null", "none", "~", "required", "optional",
               "str", "string", "bytes", "int", "bool", "any"}
_MASKS = ("[secret]", "[offline", "***")
_TYPE_TOKEN = re.compile(r"^[\w-]+:[\w/.-]*:[\w]+$")  # Pulumi type tokens, e.g. in invokes
# Our password policy asks for 15 characters (bp028_accounts); 8 still catches "changeme".
MIN_SECRET_LENGTH = 8
MAX_FILE_BYTES = 2_000_000


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _redact(value: str) -> str:
    return f"{value[:4]}... ({len(value)} chars)" if len(value) > 8 else f"({len(value)} chars)"


def is_reference(value: str) -> bool:
    """True when ``value`` points at a secret (template, variable, path, mask), not is one."""
    stripped = value.strip()
    if stripped.lower() in _NOT_VALUES:
        return True
    if any(stripped.startswith(m) for m in _MASKS) or _TEMPLATE.search(stripped):
        return True
    if _INVALID_ON_PURPOSE.match(stripped):
        return True
    if stripped.startswith(("file:", "vault:", "secure:", "!vault")):
        return True
    # A path names where a secret lives; a random string that happens to start with "/" does not.
    if _PATH.match(stripped) and not _high_entropy(stripped.replace("/", "")):
        return True
    return bool(_ENV_NAME.match(stripped))


def _high_entropy(value: str) -> bool:
    if len(value) < 20 or not re.fullmatch(r"[A-Za-z0-9+/=_-]+", value):
        return False
    has_digit = re.search(r"\d", value) is not None
    if not re.search(r"[A-Za-z]", value) or (not has_digit and len(value) < 32):
        return False
    if re.fullmatch(r"[0-9a-f]+", value):  # hex digests and ids: only long ones carry a secret
        return len(value) >= 40 and shannon_entropy(value) >= 3.5
    return shannon_entropy(value) >= 4.2


def check_assignment(name: str, value: str) -> str | None:
    """The rule a ``name = value`` literal breaks, or None."""
    if name.lower().startswith(("encrypted", "secure")) or is_reference(value):
        return None
    # A mode or type name (secretsprovider: passphrase), not a value.
    if SENSITIVE_NAME.fullmatch(value) or _TYPE_TOKEN.match(value):
        return None
    if SENSITIVE_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH:
        return "secret-assignment"
    if ENTROPY_NAME.search(name) and _high_entropy(value):
        return "high-entropy-assignment"
    return None


def scan_text(text: str, where: str, code: bool = False) -> list[SecretFinding]:
    """Findings in a text file; ``code`` files count only quoted literals as assignments."""
    findings: list[SecretFinding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        at = f"{where}:{number}"
        for rule in TOKEN_RULES:
            match = rule.pattern.search(line)
            if match:
                findings.append(SecretFinding(rule.id, at,
                                              f"{rule.description} {_redact(match.group(0))}"))
        for match in URL_CREDENTIALS.finditer(line):
            if not is_reference(match.group("pw")):
                findings.append(SecretFinding("url-credentials", at,
                                              f"password in URL for user {match.group('user')}"))
        for match in ASSIGNMENT.finditer(line):
            if code and not match.group("q"):
                continue
            rule_id = check_assignment(match.group("name"), match.group("value"))
            if rule_id:
                findings.append(SecretFinding(
                    rule_id, at, f"{match.group('name')} = {_redact(match.group('value'))}"))
    return findings


def scan_data(data: Any, where: str) -> list[SecretFinding]:
    """Findings in structured data (a recorded plan, a state export): keys name the values."""
    findings: list[SecretFinding] = []
    for path, key, value in walk(data, ""):
        for rule in TOKEN_RULES:
            match = rule.pattern.search(value)
            if match:
                findings.append(SecretFinding(rule.id, f"{where}:{path}",
                                              f"{rule.description} {_redact(match.group(0))}"))
        for match in URL_CREDENTIALS.finditer(value):
            if not is_reference(match.group("pw")):
                findings.append(SecretFinding("url-credentials", f"{where}:{path}",
                                              f"password in URL for user {match.group('user')}"))
        rule_id = check_assignment(key, value) if key else None
        if rule_id is None and key == "payload" and not is_reference(value):
            rule_id = "secret-assignment"
        if rule_id:
            findings.append(SecretFinding(rule_id, f"{where}:{path}", f"{key} = {_redact(value)}"))
    return findings


# --------------------------------------------------------------------------- sources


def repo_files(root: Path = paths.REPO_ROOT) -> list[Path]:
    """Tracked files plus new ones not ignored: what a commit could carry."""
    git = shutil.which("git")
    if git is None:
        raise CitadelleError("git is not on PATH: it lists the repository's files to scan")
    try:
        listed = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            capture_output=True, check=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise CitadelleError(f"{root}: cannot list the repository's files with git ({err})") \
            from None
    return sorted({root / name for name in listed.split("\0") if name})


def scan_file(path: Path, root: Path | None = None) -> list[SecretFinding]:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return []
        raw = path.read_bytes()
    except OSError:
        return []
    if b"\0" in raw:
        return []
    where = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
    text = raw.decode("utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            return scan_data(json.loads(text), where)
        except json.JSONDecodeError:
            pass
    return scan_text(text, where, code=path.suffix in _CODE_SUFFIXES)


def scan_paths(targets: Iterable[Path], root: Path | None = None) -> list[SecretFinding]:
    findings: list[SecretFinding] = []
    for target in targets:
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() \
            else [target]
        for path in files:
            findings += scan_file(path, root)
    return findings


def scan_plan(env: str) -> list[SecretFinding]:
    """The recorded inputs and outputs of an environment's offline plan."""
    return scan_data(plan_environment(env).to_dict(), f"plan {env}")


# --------------------------------------------------------------------------- CLI


def _handle(args: argparse.Namespace) -> int:
    if args.paths:
        targets = [Path(p) for p in args.paths]
        missing = [str(p) for p in targets if not p.exists()]
        if missing:
            raise CitadelleError(f"no such file or directory: {', '.join(missing)}")
        findings = scan_paths(targets)
        scanned = ", ".join(args.paths)
    else:
        findings = scan_paths(repo_files(), paths.REPO_ROOT)
        scanned = "the repository's files"
    envs = args.plan or ([] if args.paths else ["dev", "mirror", "prod"])
    for env in envs:
        findings += scan_plan(env)
    if envs:
        scanned += " and the offline plans of " + ", ".join(envs)
    for finding in findings:
        print(f"{finding.where}: {finding.rule}: {finding.detail}")
    print(f"secretscan: {len(findings)} finding(s) in {scanned}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([f.to_dict() for f in findings], indent=2) + "\n", encoding="utf-8")
    return 1 if findings else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "secretscan",
        help="find secrets in clear in the repository, the offline plans, state exports or logs",
    )
    parser.add_argument("paths", nargs="*",
                        help="files or directories (state exports, run logs); default: the "
                        "repository's tracked and new files plus the three offline plans")
    parser.add_argument("--plan", action="append", metavar="ENV",
                        help="also scan this environment's offline plan (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="write the findings as JSON")
    parser.set_defaults(func=_handle)

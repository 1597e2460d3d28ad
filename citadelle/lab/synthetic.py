"""A synthetic SNDS-like dataset: never real data, the same bytes for the same seed.

Tables named after the SNDS's (DCIR prestations and pharmacy, PMSI MCO stays and diagnoses,
beneficiaries) partitioned by year and month as gzip CSV, the layout of the platform's copy:
``<TABLE>/year=YYYY/month=MM/part-NNNNN.csv.gz``. Rows carry pseudonymised identifiers (hex
digests of nothing real), dates, codes and amounts. Most objects are small; a few large ones
hold a share of the bytes and are uploaded as several blocks, as the real copy's big partitions.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

TABLES: dict[str, str] = {
    "DCIR_ER_PRS_F": "BEN_NIR_PSA,EXE_SOI_DTD,PRS_NAT_REF,PRS_PAI_MNT,PSE_SPE_COD",
    "DCIR_ER_PHA_F": "BEN_NIR_PSA,EXE_SOI_DTD,PHA_PRS_C13,PHA_ACT_QSN,PHA_ACT_PRU",
    "PMSI_MCO_B": "NIR_ANO_17,SEJ_ENT_DTD,GRG_GHM,SEJ_NBJ,ETA_NUM",
    "PMSI_MCO_D": "NIR_ANO_17,SEJ_ENT_DTD,DGN_PAL,DGN_REL,ETA_NUM",
    "IR_BEN_R": "BEN_NIR_PSA,BEN_NAI_ANN,BEN_SEX_COD,BEN_RES_DPT,BEN_DCD_DTE",
}
YEARS = tuple(range(2015, 2026))
# Share of the bytes held by the few large objects, and how many there are.
LARGE_SHARE = 0.6
LARGE_COUNT = 4


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    target_bytes: int
    large: bool
    seed: int


def plan_dataset(total_bytes: int, objects: int, seed: int) -> list[ObjectSpec]:
    """Names and target sizes of ``objects`` objects summing to about ``total_bytes``."""
    if objects < LARGE_COUNT + 1:
        raise ValueError(f"objects {objects}: at least {LARGE_COUNT + 1} are needed")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, no secret
    large_bytes = int(total_bytes * LARGE_SHARE)
    small_count = objects - LARGE_COUNT
    small_mean = max(1024, (total_bytes - large_bytes) // small_count)
    partitions = [(t, y, m) for t in TABLES for y in YEARS for m in range(1, 13)]
    specs: list[ObjectSpec] = []
    for index in range(objects):
        table, year, month = partitions[index % len(partitions)]
        part = index // len(partitions)
        name = f"{table}/year={year}/month={month:02d}/part-{part:05d}.csv.gz"
        large = index < LARGE_COUNT
        size = (large_bytes // LARGE_COUNT if large
                else max(512, int(rng.uniform(0.2, 1.8) * small_mean)))
        specs.append(ObjectSpec(name, size, large, rng.getrandbits(63)))
    return specs


def _rows(table: str, rng: random.Random) -> Iterator[bytes]:
    """Batches of CSV rows: identifiers are random hex, the rest drawn from small domains."""
    while True:
        ids = rng.randbytes(16 * 128).hex()
        lines = []
        for i in range(128):
            pseudo = ids[i * 32 : (i + 1) * 32]
            day = f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            code = rng.randint(1000, 9999)
            amount = rng.randint(0, 500_000) / 100
            lines.append(f"{pseudo},{day},{table[:4]}{code},{amount:.2f},{rng.randint(1, 99)}\n")
        yield "".join(lines).encode()


def render(spec: ObjectSpec) -> bytes:
    """The object's gzip CSV bytes, about ``spec.target_bytes`` long (never much shorter)."""
    table = spec.name.split("/", 1)[0]
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible test data, no secret
    out = io.BytesIO()
    # mtime=0: the bytes depend on the seed only, not on when they were generated.
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:
        gz.write((TABLES[table] + "\n").encode())
        for batch in _rows(table, rng):
            gz.write(batch)
            if out.tell() >= spec.target_bytes:
                break
    return out.getvalue()

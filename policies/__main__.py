"""Assemble the Citadelle policy pack. Constructing PolicyPack serves the Analyzer gRPC service
and blocks: this file does nothing else (the rules live in citadelle_policies/)."""

from citadelle_policies import PACK_NAME, all_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=all_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="SecNumCloud 3.2 and ANSSI-BP-028 controls for the Citadelle platform",
)

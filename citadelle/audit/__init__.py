"""`citadelle audit-cloud`: conformance of a candidate OpenStack cloud and post-deploy drift."""

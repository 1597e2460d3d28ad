"""Data and administration in the EU: state backend, endpoint scan, secret scan."""

#!/bin/sh
# Run on a host, as root: AIDE with the host's own rule group ($1, the role's configuration)
# over a scratch copy of a binary, then the copy modified. Prints the two exit codes and how
# many lines of the report's changed-entries summary name the modified file. Nothing outside the scratch folder is touched.
set -eu
config=$1
d=$(mktemp -d /var/tmp/citadelle-aide-probe.XXXXXX)
trap 'rm -rf "$d"' EXIT
mkdir "$d/tree"
cp /usr/bin/true "$d/tree/true"
{
  echo "database_in=file:$d/db"
  echo "database_out=file:$d/db.new"
  echo "report_url=stdout"
  grep '^Citadelle *=' "$config"
  echo "$d/tree Citadelle"
} > "$d/aide.conf"
aide --config "$d/aide.conf" --init > /dev/null
mv "$d/db.new" "$d/db"
clean=0
aide --config "$d/aide.conf" --check > /dev/null || clean=$?
printf 'x' >> "$d/tree/true"
modified=0
aide --config "$d/aide.conf" --check > "$d/report" || modified=$?
echo "clean=$clean modified=$modified named=$(grep -c "^f[^:]*: $d/tree/true\$" "$d/report" || true)"

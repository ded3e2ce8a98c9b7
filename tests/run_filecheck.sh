#!/usr/bin/env bash
# A tiny lit: runs every `// RUN:` line of one IR test file with %s (the file), %bitnetc and %FileCheck
# substituted, under bash with pipefail. Usage: run_filecheck.sh FILE BITNETC FILECHECK
set -uo pipefail
file="$1"; bitnetc="$2"; filecheck="$3"
status=0; ran=0
while IFS= read -r line; do
  cmd="${line#*RUN:}"
  cmd="${cmd//%bitnetc/$bitnetc}"; cmd="${cmd//%FileCheck/$filecheck}"; cmd="${cmd//%s/$file}"
  ran=$((ran + 1))
  bash -o pipefail -c "$cmd" || { echo "FAILED: $cmd"; status=1; }
done < <(grep -E '^// RUN:' "$file")
[ $ran -gt 0 ] || { echo "no RUN line in $file"; exit 1; }
exit $status

#!/usr/bin/env bash
# Run the whole test suite under coverage and write reports/coverage.json and
# reports/junit.xml, which the dogfood check reads.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p reports
rm -f .coverage .coverage.*
.venv/bin/python -m coverage run --data-file=.coverage -m pytest \
  --junitxml=reports/junit.xml "$@"
.venv/bin/python -m coverage json --data-file=.coverage -o reports/coverage.json -q
.venv/bin/python -m coverage report --data-file=.coverage --format=total | sed 's/^/total coverage: /;s/$/ %/'

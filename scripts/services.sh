#!/usr/bin/env bash
# Make sure what the tests need is present: git, Node.js with npm (eslint tests),
# xfsprogs (copy-on-write fork tests on a loop-mounted XFS image) and a running
# PostgreSQL 15 on 127.0.0.1:5432 (migration tests).
set -euo pipefail

missing=()
command -v git >/dev/null || missing+=(git)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v mkfs.xfs >/dev/null || missing+=(xfsprogs)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing+=(postgresql-15)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
fi
pg_isready -h 127.0.0.1 -p 5432

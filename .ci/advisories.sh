#!/usr/bin/env bash
# `make deny`'s RustSec advisories check: against the live database when this machine can
# fetch it, else against the snapshot committed in .ci/advisory-db/ (says which it used).
#
# The snapshot holds the advisories of every crate named in Cargo.lock when it was taken (and
# the list of those names, CRATES): a crate added since is not covered, so the check fails
# until `.ci/advisories.sh --snapshot DIR` takes it again from a full advisory-db checkout
# (a clone of github.com/rustsec/advisory-db). cargo-deny wants a git checkout: one is made in target/
# with the snapshot's own date, so cargo-deny's staleness check sees its real age.
set -euo pipefail
cd "$(dirname "$0")/.."

SNAPSHOT=.ci/advisory-db
UPSTREAM=https://github.com/rustsec/advisory-db
# The directory name cargo-deny gives the default database under its db-path.
DB_DIR=advisory-db-3157b0e258782691

lock_crates() { sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u; }

if [ "${1:-}" = "--snapshot" ]; then
  full=${2:?usage: .ci/advisories.sh --snapshot PATH-TO-ADVISORY-DB}
  rm -rf "$SNAPSHOT" && mkdir -p "$SNAPSHOT/crates"
  cp "$full/LICENSE.txt" "$SNAPSHOT/"
  if [ -f "$full/SNAPSHOT" ]; then cp "$full/SNAPSHOT" "$SNAPSHOT/"; else
    echo "rustsec/advisory-db $(git -C "$full" rev-parse HEAD) ($(git -C "$full" show -s --format=%cs HEAD))" \
      > "$SNAPSHOT/SNAPSHOT"; fi
  lock_crates > "$SNAPSHOT/CRATES"
  while read -r name; do
    if [ -d "$full/crates/$name" ]; then cp -r "$full/crates/$name" "$SNAPSHOT/crates/"; fi
  done < "$SNAPSHOT/CRATES"
  echo "advisories: snapshot of $(cut -d' ' -f2 "$SNAPSHOT/SNAPSHOT" | cut -c1-12) for $(wc -l < "$SNAPSHOT/CRATES") crates," \
    "$(find "$SNAPSHOT/crates" -name '*.md' | wc -l) advisories, $(du -sb "$SNAPSHOT" | cut -f1) bytes"
  exit 0
fi

if timeout 30 git ls-remote --exit-code "$UPSTREAM" HEAD >/dev/null 2>&1; then
  echo "advisories: checking against the live RustSec database ($UPSTREAM)"
  cargo deny check advisories
  exit 0
fi

missing=$(lock_crates | grep -vxF -f "$SNAPSHOT/CRATES" || true)
if [ -n "$missing" ]; then
  echo "advisories: the snapshot does not cover" $missing "- take it again:" \
    ".ci/advisories.sh --snapshot PATH-TO-A-CLONE-OF-rustsec/advisory-db"
  exit 1
fi
snapshot=$(cat "$SNAPSHOT/SNAPSHOT")
commit=$(echo "$snapshot" | cut -d' ' -f2)
date=$(echo "$snapshot" | sed -n 's/.*(\([0-9-]*\)).*/\1/p')
work=target/advisory-check
rm -rf "$work" && mkdir -p "$work/dbs/$DB_DIR"
cp -r "$SNAPSHOT/." "$work/dbs/$DB_DIR/"
(
  cd "$work/dbs/$DB_DIR"
  export GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z"
  git init -q -b main . && git add -A
  git -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "rustsec/advisory-db $commit"
)
age=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
# The snapshot's real age is checked, with a year's patience instead of the default 90 days.
{ cat deny.toml; printf '\n[advisories]\ndb-path = "%s"\nmaximum-db-staleness = "P365D"\n' "$PWD/$work/dbs"; } \
  > "$work/deny.toml"
echo "advisories: the live database cannot be fetched here; checking against the committed" \
  "snapshot of rustsec/advisory-db ${commit:0:12} ($date, $age days old)"
cargo deny --offline --config "$work/deny.toml" check advisories

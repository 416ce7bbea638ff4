#!/usr/bin/env bash
# Proves that vendor/tiny_http is the published tiny_http 0.12.0 plus exactly
# vendor/tiny_http.patch (run by `make vendor-check`, part of `make test`).
#
# The pristine crate comes from Cargo's download cache when it is there, else from the registry;
# either way its sha256 must be the checksum Cargo.lock recorded for tiny_http 0.12.0 before
# the [patch] (a patched crate has no checksum in Cargo.lock, so it is kept here).
# To change the patch: edit vendor/tiny_http, then `vendor/check.sh --update`.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=tiny_http
VERSION=0.12.0
SHA256=389915df6413a2e74fb181895f933386023c71110878cd0825588928e64cdc82
# What is vendored: what the build needs and the licenses (examples, tests and benches are not).
PARTS=(Cargo.toml LICENSE-APACHE LICENSE-MIT README.md src)

work=target/vendor-check
rm -rf "$work" && mkdir -p "$work/a" "$work/b"
crate="$work/$NAME-$VERSION.crate"
cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NAME-$VERSION.crate" 2>/dev/null | head -n 1 || true)
if [ -n "$cached" ] && echo "$SHA256  $cached" | sha256sum --check --status; then
  cp "$cached" "$crate"
  from="Cargo's download cache"
else
  # The registry's own download address (what `cargo fetch` would use), then crates.io's.
  dl=$(curl -sSf --max-time 30 https://index.crates.io/config.json 2>/dev/null \
    | sed -nE 's/.*"dl": *"([^"]+)".*/\1/p' || true)
  for url in ${dl:+"$dl/$NAME/$VERSION/download"} "https://crates.io/api/v1/crates/$NAME/$VERSION/download"; do
    if curl -sSfL --max-time 60 -o "$crate" "$url" 2>/dev/null; then from="$url"; break; fi
  done
  [ -n "${from:-}" ] || { echo "vendor-check: cannot download $NAME-$VERSION.crate"; exit 1; }
fi
echo "$SHA256  $crate" | sha256sum --check --status \
  || { echo "vendor-check: $NAME-$VERSION.crate does not have the sha256 Cargo.lock recorded"; exit 1; }
tar -xzf "$crate" -C "$work"
for part in "${PARTS[@]}"; do
  cp -r "$work/$NAME-$VERSION/$part" "$work/a/"
done
# Every vendored file must be one of PARTS: anything else would escape the comparison.
extra=$(cd vendor/$NAME && ls -A | grep -vxF -f <(printf '%s\n' "${PARTS[@]}") || true)
[ -z "$extra" ] || { echo "vendor-check: unexpected files in vendor/$NAME: $extra"; exit 1; }
cp -r "vendor/$NAME/." "$work/b/"
# Timestamps are dropped from the file headers so the diff depends on content only.
(cd "$work" && LC_ALL=C diff -ruN a b || true) | sed -E 's/^((---|\+\+\+) [^\t]+)\t.*$/\1/' > "$work/actual.patch"
if [ "${1:-}" = "--update" ]; then
  cp "$work/actual.patch" "vendor/$NAME.patch"
  echo "vendor-check: vendor/$NAME.patch updated"
  exit 0
fi
if ! diff -u "vendor/$NAME.patch" "$work/actual.patch"; then
  echo "vendor-check: vendor/$NAME differs from $NAME $VERSION + vendor/$NAME.patch (above)"
  exit 1
fi
echo "vendor-check: vendor/$NAME = $NAME $VERSION ($from, sha256 checked) + vendor/$NAME.patch" \
  "($(grep -c '^@@' "vendor/$NAME.patch") hunks)"

#!/usr/bin/env bash
# Runs the built image's binary (buildah from + mount + chroot, as podman run does not work
# here) against the mock Kimi on loopback, and checks /ping and a chat completion.
# Usage: tests/image.sh IMAGE MOCK_BIN
set -euo pipefail
image=$1
mock_bin=$2
storage=(--storage-driver vfs)
port=$((20000 + RANDOM % 20000))

ctr=$(buildah "${storage[@]}" from "$image")
mnt=$(buildah "${storage[@]}" mount "$ctr")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  buildah "${storage[@]}" umount "$ctr" >/dev/null 2>&1 || true
  buildah "${storage[@]}" rm "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The image holds exactly one file.
files=$(cd "$mnt" && find . -type f | sort)
[ "$files" = "./kimi-free-api" ] || { echo "image holds more than the binary: $files"; exit 1; }

mock_out=$(mktemp)
"$mock_bin" > "$mock_out" &
pids+=($!)
for _ in $(seq 50); do [ -s "$mock_out" ] && break; sleep 0.1; done
mock_url=$(head -n1 "$mock_out")

# The image's user and configuration, as a container runtime would apply them.
chroot --userspec=65534:65534 "$mnt" /kimi-free-api --host 127.0.0.1 --port "$port" \
  --kimi-base-url "$mock_url" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done

[ "$(curl -sf "http://127.0.0.1:$port/ping")" = pong ] || { echo "no pong"; exit 1; }
answer=$(curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H "Authorization: Bearer rt-image" \
  -H "Content-Type: application/json" \
  -d '{"model":"kimi","messages":[{"role":"user","content":"hi"}]}')
case "$answer" in
  *'"content":"Hello from the mock Kimi."'*) echo "image: 2 passed, 0 failed" ;;
  *) echo "unexpected answer: $answer"; exit 1 ;;
esac

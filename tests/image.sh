#!/usr/bin/env bash
# Runs the built image's binary (buildah from + mount + chroot, as podman run does not work
# here) against the mock Kimi on loopback, with the image's user and environment, and checks:
# the image holds the binary and an empty /data owned by the runtime user and nothing else;
# /ping; a chat completion with a 2026 web refresh token and one with a legacy refresh_token;
# the rotated web login saved in /data (0600 files), and no "restart will lose" warning,
# which a server whose state directory cannot be written does give.
# Usage: tests/image.sh IMAGE MOCK_BIN
set -euo pipefail
image=$1
mock_bin=$2
storage=(--storage-driver vfs)
port=$((20000 + RANDOM % 20000))
chroot=$(command -v chroot) # found before `env -i` clears PATH

ctr=$(buildah "${storage[@]}" from "$image")
mnt=$(buildah "${storage[@]}" mount "$ctr")
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  buildah "${storage[@]}" umount "$ctr" >/dev/null 2>&1 || true
  buildah "${storage[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
pass() { passed=$((passed + 1)); }
fail() { echo "image: $*"; exit 1; }

# The image holds the binary and the empty state directory, nothing else.
contents=$(cd "$mnt" && find . -mindepth 1 -printf '%p %y %m %U:%G\n' | sort)
expected=$'./data d 700 65534:65534\n./kimi-free-api f 755 0:0'
[ "$contents" = "$expected" ] || fail "image holds more or other than the binary and /data: $contents"
pass

# The image's configuration, as a container runtime would apply it.
user=$(buildah "${storage[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
mapfile -t image_env < <(buildah "${storage[@]}" inspect --type image \
  --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image" | sed '/^$/d')
volumes=$(buildah "${storage[@]}" inspect --type image --format '{{.OCIv1.Config.Volumes}}' "$image")
[ "$user" = 65534:65534 ] || fail "runs as $user"
printf '%s\n' "${image_env[@]}" | grep -qx 'STATE_DIR=/data' || fail "no STATE_DIR=/data in ${image_env[*]}"
[ "$volumes" = 'map[/data:{}]' ] || fail "volumes: $volumes"
health=$(buildah "${storage[@]}" inspect --type image --format '{{.Docker.Config.Healthcheck.Test}}' "$image")
[ "$health" = '[CMD /kimi-free-api health]' ] || fail "no HEALTHCHECK running the health probe: $health"
pass

"$mock_bin" > "$work/mock" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/mock" ] && break; sleep 0.1; done
mock_url=$(head -n1 "$work/mock")
[[ $mock_url == http://127.0.0.1:* ]] || fail "the mock did not start"

# Starts the image's binary on port $1 with more flags; its log goes to $work/log-$1.
serve() {
  local at=$1
  shift
  env -i "${image_env[@]}" "$chroot" --userspec="$user" "$mnt" /kimi-free-api --host 127.0.0.1 --port "$at" \
    --kimi-base-url "$mock_url" --kimi-connect-base-url "$mock_url" --kimi-auth-base-url "$mock_url" \
    --kimi-global-base-url "$mock_url" --kimi-global-auth-base-url "$mock_url" "$@" 2> "$work/log-$at" &
  pids+=($!)
  for _ in $(seq 50); do grep -q 'listening on' "$work/log-$at" && return; sleep 0.1; done
  fail "the server on port $at did not start: $(cat "$work/log-$at")"
}

serve "$port"
[ "$(curl -sf "http://127.0.0.1:$port/ping")" = pong ] || fail "no pong"
pass
! grep -q 'restart will lose' "$work/log-$port" || fail "the state directory /data is not usable: $(cat "$work/log-$port")"
pass

# A 2026 web refresh token (the claims of web_refresh_token_in in tests/support/mod.rs).
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
iat=1795000000
claims="{\"iss\":\"account-nt\",\"typ\":\"refresh\",\"app_id\":\"kimi\",\"sub\":\"image-user\",\
\"ssid\":\"ss-image-user\",\"device_id\":\"7000000000000079190\",\"region\":\"cn\",\"iat\":$iat,\
\"exp\":$((iat + 90 * 86400))}"
web_token="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '%s' "$claims" | b64url).c2ln"

chat() {
  curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H "Authorization: Bearer $1" \
    -H "Content-Type: application/json" -d '{"model":"kimi","messages":[{"role":"user","content":"hi"}]}' || true
}
for token in "$web_token" rt-image; do
  answer=$(chat "$token")
  case "$answer" in
    *'"content":"Hello from the mock Kimi."'*) pass ;;
    *) fail "unexpected answer: $answer" ;;
  esac
done

# The rotated logins are in /data, private to the runtime user.
stats=$(curl -sf "$mock_url/_mock/stats")
[[ $stats == *"\"$web_token\""* && $stats == *'"sessions_revoked":0'* ]] || fail "mock stats: $stats"
saved=$(cd "$mnt/data" && find . -mindepth 1 -printf '%y %m %U:%G\n' | sort | uniq -c)
[[ $saved =~ ^\ *[0-9]+\ f\ 600\ 65534:65534$ ]] || fail "/data after the chats: $saved"
! grep -rqF "$web_token" "$mnt/data" || fail "/data holds the spent web refresh token, not its rotation"
pass

# The warning checked above is real: a state directory the user cannot create gives it.
serve $((port + 1)) --state-dir /no-such-dir
grep -q 'restart will lose' "$work/log-$((port + 1))" || fail "no warning for an unusable state directory"
pass

echo "image: $passed passed, 0 failed"

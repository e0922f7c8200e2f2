#!/usr/bin/env bash
# Container check: build the CPU serving image from the Dockerfile with podman, then run
# the image's own command from its root filesystem with a test model package, wait for
# /ready, translate once, send SIGTERM and expect a clean exit 0.
#
# Why not `podman run`: containers cannot start on CI's machines (no setrlimit), so the
# image's root filesystem is entered with chroot instead (in a private mount namespace, so
# its /proc, /dev and /models binds vanish with the server). No base image registry is
# reachable either: the base is debootstrapped from Debian's packages (cached in
# .cache/container/) and passed as BASE_IMAGE. Podman gets a storage root of its own
# under /var/tmp, removed at the end whatever happens.
#
# Needs root. Installs podman and debootstrap with apt when missing.
# Usage: bash .ci/container-check.sh     (6 to 10 minutes on a 2-core machine)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
SUITE=bookworm
CACHE_DIR=$REPO/.cache/container
BASE_TAR=$CACHE_DIR/base-$SUITE-minbase.tar
IMAGE=localhost/seq2seq-serve:check
BASE_IMAGE=localhost/seq2seq-serve-base:$SUITE
READY_TIMEOUT_S=${READY_TIMEOUT_S:-240}
STOP_TIMEOUT_S=60
T0=$SECONDS
WORK=""
SERVER_PID=""

log() { printf '[container-check %4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "killing server $SERVER_PID"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    # Any process still rooted in the image (chroot) is ours: end it.
    local link pid
    for link in /proc/[0-9]*/root; do
      pid=${link#/proc/}
      pid=${pid%/root}
      if [[ $(readlink "$link" 2>/dev/null) == "$WORK"/* ]]; then
        log "killing leftover process $pid in the image"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    if [[ -s $WORK/server.log && $rc -ne 0 ]]; then
      log "server log (last 40 lines):"
      tail -n 40 "$WORK/server.log" || true
    fi
    # The storage root is private to this run, so removing it removes every image and
    # layer (faster than `podman rmi` on vfs).
    "${PODMAN[@]}" image unmount --all >/dev/null 2>&1 || true
    # Anything still mounted below WORK (there should be nothing) would make rm fail.
    findmnt -rn -o TARGET | grep -F "$WORK" | sort -r | xargs -r -n1 umount -l || true
    rm -rf --one-file-system "$WORK"
  fi
  if ((rc == 0)); then log "PASS (total ${SECONDS}s)"; else log "exit $rc after ${SECONDS}s"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || fail "needs root (podman build, chroot, mounts)"
[[ -x $PY ]] || fail "no python at $PY (run make venv first)"

# 1. Tools.
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing podman and debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap >/dev/null
fi
WORK=$(mktemp -d /var/tmp/s2s-container-check.XXXXXX)
PODMAN=(podman --root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs)

# 2. Local base image (Debian minbase; the Dockerfile installs python3 itself, as it does
#    on the CUDA and Ubuntu bases).
if [[ ! -s $BASE_TAR ]]; then
  log "debootstrapping $SUITE into the cache"
  mkdir -p "$CACHE_DIR"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$WORK/rootfs" \
    http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
  tar -C "$WORK/rootfs" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf --one-file-system "$WORK/rootfs"
fi
"${PODMAN[@]}" import --quiet "$BASE_TAR" "$BASE_IMAGE" >/dev/null
log "base image ready"

# 3. Build the CPU flavour. The host CA bundle is lent to RUN steps because package
#    registries are reached through a TLS-inspecting proxy here.
log "building $IMAGE (CPU flavour)"
"${PODMAN[@]}" build --format docker --isolation chroot --layers=false \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg ONNXRUNTIME=onnxruntime \
  -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log"; fail "image build failed"; }
log "built: $("${PODMAN[@]}" image ls --format '{{.Size}}' "$IMAGE") "

# 4. The image's configuration: command, environment, user, health check.
"${PODMAN[@]}" image inspect "$IMAGE" >"$WORK/inspect.json"
"$PY" - "$WORK/inspect.json" >"$WORK/image.sh" <<'EOF'
import json, shlex, sys

image = json.load(open(sys.argv[1]))[0]
cfg = image["Config"]
def arr(name, items):
    print(f"{name}=(" + " ".join(shlex.quote(x) for x in items) + ")")
user = cfg.get("User") or ""
if not user or user.split(":")[0] in ("0", "root"):
    sys.exit(f"image runs as root (User={user!r})")
if "8000/tcp" not in (cfg.get("ExposedPorts") or {}):
    sys.exit("image does not EXPOSE 8000")
# podman reports a docker-format image's HEALTHCHECK beside Config, docker inside it.
health_cfg = image.get("HealthCheck") or image.get("Healthcheck") or cfg.get("Healthcheck")
health = (health_cfg or {}).get("Test") or []
if not health or health[0] != "CMD":
    sys.exit(f"image has no exec-form HEALTHCHECK: {health!r}")
if not cfg.get("Entrypoint"):
    sys.exit("image has no ENTRYPOINT")
arr("IMG_CMD", (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or []))
arr("IMG_ENV", cfg.get("Env") or [])
arr("IMG_HEALTH", health[1:])
print(f"IMG_USER={shlex.quote(user)}")
print(f"IMG_WORKDIR={shlex.quote(cfg.get('WorkingDir') or '/')}")
EOF
# shellcheck disable=SC1091
source "$WORK/image.sh"
log "image command: ${IMG_CMD[*]} (user $IMG_USER, workdir $IMG_WORKDIR)"
ROOT=$("${PODMAN[@]}" image mount "$IMAGE")

# 5. A test model package (the tiny Marian fixture the test suite also uses; cached).
PACKAGE=$(HF_HUB_OFFLINE=1 "$PY" - <<'EOF'
from export.cache import ensure_package
from training.checkpoints import ensure_checkpoint

print(ensure_package(ensure_checkpoint("marian", "tiny"), task="translation",
                     name="tiny-marian", precisions=("fp32", "int8")))
EOF
)
PACKAGE=$(tail -n 1 <<<"$PACKAGE")
[[ -f $PACKAGE/manifest.json ]] || fail "no model package at $PACKAGE"
read -r SRC_LANG TGT_LANG < <("$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))
print(m["languages"]["source"][0], m["languages"]["target"][0])' "$PACKAGE/manifest.json")
log "model package: $PACKAGE ($SRC_LANG -> $TGT_LANG)"

# Runs a command as the image's user inside its root filesystem, with the image's
# environment plus overrides, in a private mount namespace holding /proc, /dev and the
# models folder (read-only at /models). It execs (so a background `in_image ... &` has
# the server's own PID in $!, and SIGTERM reaches it): call it in a subshell or with &.
in_image() {
  # shellcheck disable=SC2016  # the inner script expands its own positional parameters
  exec unshare --mount --propagation private -- /bin/sh -c '
    set -e
    root=$1 models=$2 user=$3 workdir=$4; shift 4
    mount --bind /proc "$root/proc"
    mount --bind /dev "$root/dev"
    mount --bind "$models" "$root/models"
    mount -o remount,bind,ro "$root/models"
    exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$workdir" "$@"
  ' sh "$ROOT" "$(dirname "$PACKAGE")" "$IMG_USER" "$IMG_WORKDIR" "$@"
}

# 6. Start the server exactly as the image would, bound to a free loopback port.
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE_URL=http://127.0.0.1:$PORT
RUN_ENV=("${IMG_ENV[@]}" S2S_HOST=127.0.0.1 "S2S_PORT=$PORT" S2S_DRAIN_GRACE_S=10)
log "starting server on $BASE_URL"
in_image "${RUN_ENV[@]}" "${IMG_CMD[@]}" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do # the exec chain unshare > sh > chroot > env > python
  [[ $(readlink "/proc/$SERVER_PID/exe" 2>/dev/null) == "$ROOT"/* ]] && break
  sleep 0.2
done
[[ $(readlink "/proc/$SERVER_PID/exe" 2>/dev/null) == "$ROOT"/* ]] \
  || fail "PID $SERVER_PID is not the server in the image (SIGTERM would miss it)"

http() { # METHOD PATH [JSON BODY] -> prints "STATUS BODY"
  "$PY" - "$@" <<'EOF'
import sys, urllib.error, urllib.request

method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError as e:
    print(0, e)
EOF
}

deadline=$((SECONDS + READY_TIMEOUT_S))
until [[ $(http GET "$BASE_URL/ready") == 200* ]]; do
  kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID" || true; fail "server exited before ready"; }
  ((SECONDS < deadline)) || fail "not ready after ${READY_TIMEOUT_S}s"
  sleep 2
done
log "ready"

# 7. The image's HEALTHCHECK command, one translation, the metrics that counted it.
HEALTH_ENV=("${IMG_ENV[@]}" "S2S_PORT=$PORT")
(in_image "${HEALTH_ENV[@]}" "${IMG_HEALTH[@]}") || fail "the image's HEALTHCHECK command failed"
log "HEALTHCHECK command passed"
(in_image "${IMG_ENV[@]}" python -c 'import importlib.util, sys
sys.exit(importlib.util.find_spec("torch") is not None)') \
  || fail "torch is importable in the serving image"
log "no torch in the image"

BODY=$(printf '{"text": "A man is riding a horse.", "source_lang": "%s", "target_lang": "%s"}' \
  "$SRC_LANG" "$TGT_LANG")
ANSWER=$(http POST "$BASE_URL/translate" "$BODY")
log "POST /translate -> $ANSWER"
"$PY" -c '
import json, sys
status, _, body = sys.argv[1].partition(" ")
assert status == "200", f"status {status}"
out = json.loads(body)["translations"]
assert len(out) == 1 and out[0].strip(), f"bad translations {out!r}"' "$ANSWER" \
  || fail "/translate did not answer one non-empty translation"
METRICS=$(http GET "$BASE_URL/metrics")
grep -Eq 's2s_requests_total\{[^}]*route="/translate"[^}]*status="200"[^}]*\} 1(\.0)?$' <<<"$METRICS" \
  || grep -Eq 's2s_requests_total\{[^}]*status="200"[^}]*route="/translate"[^}]*\} 1(\.0)?$' <<<"$METRICS" \
  || fail "/metrics does not count the translation"
log "/metrics counted it"

# 8. SIGTERM: graceful drain, then exit 0.
log "SIGTERM"
kill -TERM "$SERVER_PID"
deadline=$((SECONDS + STOP_TIMEOUT_S))
while kill -0 "$SERVER_PID" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "server still running ${STOP_TIMEOUT_S}s after SIGTERM"
  sleep 1
done
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
((rc == 0)) || fail "server exited with $rc after SIGTERM"
log "server exited 0 after SIGTERM"

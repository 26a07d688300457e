#!/usr/bin/env bash
# The federation of deploy/compose.yaml without Docker: three hotlines (uk, kr, br) peered in a
# ring and a platform node following all three, as local processes on loopback, in a temp dir.
#
#   deploy/local-federation.sh                      # release build
#   REDLINE_PROFILE=debug deploy/local-federation.sh  # debug build (faster to compile, for CI)
#
# It builds redline-node and redline once, bootstraps the identities (each node is started once
# to create its key and print its `verifier key ...` line, then stopped), writes the configs with
# peers and trust lists, starts all four, submits reference images at the uk hotline, waits
# until the platform (and the rest of the ring) has replicated them, matches them at the
# platform, and stops every node with SIGTERM. Exit code 0 only if the platform matched what
# the hotline submitted and every node stopped cleanly (exit code 0).
#
# Environment:
#   REDLINE_PROFILE    release (default) or debug
#   REDLINE_BIN_DIR    use redline-node and redline from this folder; skip the build
#   REDLINE_BASE_PORT  use ports BASE..BASE+3 (default: four free ports picked at random)
#   REDLINE_SHARED     the shared folder with pdq-reference/images (default: ../shared beside
#                      the repository); without it, the script draws its own PNG images
#   REDLINE_KEEP_WORK  1 = keep the temp dir (configs, data, logs) after a successful run
#   REDLINE_DEADLINE   seconds to wait for replication (default 30)
#   CARGO              the cargo to build with (default: cargo from PATH)
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$HERE/.." && pwd)
PROFILE=${REDLINE_PROFILE:-release}
DEADLINE=${REDLINE_DEADLINE:-30}
NAMES=(uk kr br platform)
# Plain node logs (tracing-subscriber honours NO_COLOR), readable when printed on failure.
export NO_COLOR=1
HOTLINES=(uk kr br)

say() { printf '== %s\n' "$*"; }
die() { printf 'local-federation: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is needed (ports, JSON, fallback images)"

origin_of() {
  case "$1" in
    platform) echo "platform.example" ;;
    *) echo "hotline-$1.example" ;;
  esac
}

# ---------------------------------------------------------------- build
CARGO=${CARGO:-cargo}
if [[ -n "${REDLINE_BIN_DIR:-}" ]]; then
  BIN=$(cd -- "$REDLINE_BIN_DIR" && pwd)
else
  case "$PROFILE" in
    release) profile_flag=(--release) ;;
    debug) profile_flag=() ;;
    *) die "REDLINE_PROFILE must be release or debug, not $PROFILE" ;;
  esac
  say "build ($PROFILE): redline-node, redline"
  # One package per build, as the e2e tests build them, so both reuse the same artifacts.
  "$CARGO" build "${profile_flag[@]}" --manifest-path "$REPO/Cargo.toml" -p redline-server --bin redline-node
  "$CARGO" build "${profile_flag[@]}" --manifest-path "$REPO/Cargo.toml" -p redline-client --bin redline
  target_dir=$("$CARGO" metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$target_dir/$PROFILE"
fi
NODE_BIN="$BIN/redline-node"
CLI_BIN="$BIN/redline"
[[ -x "$NODE_BIN" && -x "$CLI_BIN" ]] || die "no redline-node/redline in $BIN"

# ---------------------------------------------------------------- work dir and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/redline-federation.XXXXXX")
declare -A PID=()
OK=0

# Stops every node still running (SIGTERM, then SIGKILL after 10 s); on failure prints the
# nodes' logs and keeps the work dir.
cleanup() {
  local rc=$?
  set +e
  local name pid
  for name in "${!PID[@]}"; do
    pid=${PID[$name]}
    kill -TERM "$pid" 2>/dev/null
  done
  for name in "${!PID[@]}"; do
    pid=${PID[$name]}
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ $OK == 1 && $rc == 0 ]]; then
    if [[ "${REDLINE_KEEP_WORK:-0}" == 1 ]]; then
      echo "work dir kept: $WORK"
    else
      rm -rf -- "$WORK"
    fi
  else
    local f
    for f in "$WORK"/*/node.out "$WORK"/*/node.err "$WORK"/*.log; do
      [[ -s "$f" ]] || continue
      echo "---- ${f#"$WORK"/} (last 25 lines)" >&2
      tail -n 25 -- "$f" >&2
    done
    echo "local-federation: FAILED (exit code $rc); configs, data and logs in $WORK" >&2
    [[ $rc == 0 ]] && rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say "work dir: $WORK"

# ---------------------------------------------------------------- ports
declare -A PORT=()
if [[ -n "${REDLINE_BASE_PORT:-}" ]]; then
  i=0
  for name in "${NAMES[@]}"; do PORT[$name]=$((REDLINE_BASE_PORT + i)); i=$((i + 1)); done
else
  # Four ports the kernel hands out as free (held open together so they are distinct).
  read -r -a free < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
  )
  i=0
  for name in "${NAMES[@]}"; do PORT[$name]=${free[$i]}; i=$((i + 1)); done
fi
url_of() { echo "http://127.0.0.1:${PORT[$1]}"; }
for name in "${NAMES[@]}"; do
  # Refuse a port something already answers on (REDLINE_BASE_PORT, or a lost race).
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$name]}") 2>/dev/null; then
    die "port ${PORT[$name]} (for $name) is in use; set REDLINE_BASE_PORT to a free range"
  fi
done

# ---------------------------------------------------------------- node control
# start NAME: starts the node with $WORK/NAME.toml, waits for its `listening on` line.
start() {
  local name=$1 dir="$WORK/$1"
  mkdir -p "$dir"
  "$NODE_BIN" --config "$WORK/$name.toml" >>"$dir/node.out" 2>>"$dir/node.err" &
  PID[$name]=$!
  local lines_before=${2:-0}
  for _ in $(seq 150); do
    if [[ $(grep -c '^listening on ' "$dir/node.out" 2>/dev/null || true) -gt $lines_before ]]; then
      return 0
    fi
    kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited during start (see $dir/node.err)"
    sleep 0.1
  done
  die "$name did not print 'listening on' within 15 s"
}

# stop NAME: SIGTERM, wait, and require exit code 0.
stop() {
  local name=$1 pid=${PID[$1]} rc=0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  unset "PID[$name]"
  [[ $rc == 0 ]] || die "$name exited with code $rc on SIGTERM (see $WORK/$name/node.err)"
}

# ---------------------------------------------------------------- bootstrap identities
say "bootstrap: start each node once to create its identity"
declare -A KEY=()
for name in "${NAMES[@]}"; do
  cat >"$WORK/$name.toml" <<EOF
origin = "$(origin_of "$name")"
data_dir = "$WORK/$name/data"
listen = "127.0.0.1:${PORT[$name]}"
EOF
  start "$name" 0
done
for name in "${NAMES[@]}"; do
  KEY[$name]=$(sed -n 's/^verifier key //p' "$WORK/$name/node.out" | head -n 1)
  [[ -n "${KEY[$name]}" ]] || die "no 'verifier key' line from $name"
  stop "$name"
  printf '   %-8s %s\n' "$name" "${KEY[$name]}"
done

# ---------------------------------------------------------------- configs
# The ring of deploy/compose.yaml: uk pulls from kr, kr from br, br from uk; every hotline
# trusts the other two; the platform pulls from all three and trusts them.
declare -A NEXT=([uk]=kr [kr]=br [br]=uk)
trust_block() {
  local name=$1
  cat <<EOF

[[trust]]
origin = "$(origin_of "$name")"
key = "${KEY[$name]}"
policy = "accept"
EOF
}
common() {
  cat <<EOF
origin = "$(origin_of "$1")"
data_dir = "$WORK/$1/data"
listen = "127.0.0.1:${PORT[$1]}"

[sync]
# Push is the fast path; a short pull interval keeps this demo quick if a push is missed.
poll_interval_ms = 1000
backoff_initial_ms = 100
backoff_max_ms = 2000
EOF
}
for name in "${HOTLINES[@]}"; do
  {
    common "$name"
    printf '\n[[peers]]\nurl = "%s"\n' "$(url_of "${NEXT[$name]}")"
    for other in "${HOTLINES[@]}"; do
      [[ $other == "$name" ]] || trust_block "$other"
    done
  } >"$WORK/$name.toml"
done
{
  common platform
  for other in "${HOTLINES[@]}"; do printf '\n[[peers]]\nurl = "%s"\n' "$(url_of "$other")"; done
  for other in "${HOTLINES[@]}"; do trust_block "$other"; done
} >"$WORK/platform.toml"

say "start the federation"
for name in "${NAMES[@]}"; do
  start "$name" 1
  printf '   %-8s %-20s %s (pid %s)\n' "$name" "$(origin_of "$name")" "$(url_of "$name")" "${PID[$name]}"
done

# ---------------------------------------------------------------- images
SHARED=${REDLINE_SHARED:-$REPO/../shared}
REF="$SHARED/pdq-reference/images"
[[ -d "$REF" ]] && REF=$(cd -- "$REF" && pwd)
SUBMIT=()
MODIFIED=()
if [[ -f "$REF/bridge-mods__aaa-orig.jpg" ]]; then
  SUBMIT=("$REF/bridge-mods__aaa-orig.jpg" "$REF/labelme-subset__q0746.jpg" "$REF/labelme-subset__q2821.jpg")
  # A re-encoded, blurred copy of the first: perceptual matching finds it too.
  MODIFIED=("$REF/bridge-mods__blur-a-little.jpg")
  say "images: PDQ reference images from $REF"
else
  say "images: $REF not found; drawing PNG images instead"
  mkdir -p "$WORK/images"
  python3 - "$WORK/images" <<'EOF'
# Writes three distinct 256x256 greyscale PNGs with the standard library only.
import math, struct, sys, zlib

def png(path, w, h, f):
    raw = b"".join(b"\x00" + bytes(f(x, y) for x in range(w)) for y in range(h))
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        out.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        out.write(chunk(b"IEND", b""))

clamp = lambda v: max(0, min(255, int(v)))
d = sys.argv[1]
png(f"{d}/rings.png", 256, 256,
    lambda x, y: clamp(128 + 127 * math.sin(math.hypot(x - 90, y - 140) / 9)))
png(f"{d}/waves.png", 256, 256,
    lambda x, y: clamp(128 + 70 * math.sin(x / 13) + 57 * math.cos(y / 7 + x / 31)))
png(f"{d}/blocks.png", 256, 256,
    lambda x, y: clamp(40 + 180 * (((x // 37) * 7 + (y // 23) * 3) % 5) / 4))
EOF
  SUBMIT=("$WORK/images/rings.png" "$WORK/images/waves.png" "$WORK/images/blocks.png")
fi

cli() { timeout 60 "$CLI_BIN" "$@"; }

# ---------------------------------------------------------------- submit at uk
say "submit ${#SUBMIT[@]} images at hotline-uk ($(url_of uk))"
cli --node "$(url_of uk)" submit --label ncii --legal-basis 'local federation demo' \
  --case-ref DEMO-1 "${SUBMIT[@]}" | tee "$WORK/submit.log"
SIZE=$(cli --node "$(url_of uk)" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next(o["tree_size"] for o in s["origins"] if o["origin"] == s["origin"]))')
[[ "$SIZE" -ge "${#SUBMIT[@]}" ]] || die "hotline-uk's log has $SIZE entries after submitting ${#SUBMIT[@]}"

# ---------------------------------------------------------------- wait for replication
# tree_size NAME ORIGIN: the size of ORIGIN's log as node NAME holds it (0 if none).
tree_size() {
  local out
  out=$(cli --node "$(url_of "$1")" status --json 2>/dev/null) || { echo 0; return; }
  python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print(max([o["tree_size"] for o in s["origins"] if o["origin"] == sys.argv[1]] or [0]))' "$2" <<<"$out"
}
say "wait (at most ${DEADLINE} s) until the platform and the ring hold hotline-uk's $SIZE entries"
start_s=$SECONDS
declare -A DONE=()
while :; do
  for name in platform kr br; do
    [[ -n "${DONE[$name]:-}" ]] && continue
    got=$(tree_size "$name" hotline-uk.example)
    if [[ "$got" -ge "$SIZE" ]]; then
      DONE[$name]=1
      printf '   %-8s holds hotline-uk.example size %s after %s s\n' "$name" "$got" $((SECONDS - start_s))
    fi
  done
  [[ ${#DONE[@]} == 3 ]] && break
  if ((SECONDS - start_s >= DEADLINE)); then
    cli --node "$(url_of platform)" status || true
    die "replication did not complete within ${DEADLINE} s"
  fi
  sleep 0.2
done
cli --node "$(url_of platform)" status

# ---------------------------------------------------------------- match at the platform
say "match at the platform ($(url_of platform))"
cli --node "$(url_of platform)" match "${SUBMIT[@]}" "${MODIFIED[@]}" | tee "$WORK/match.log"
cli --node "$(url_of platform)" match --json "${SUBMIT[@]}" "${MODIFIED[@]}" >"$WORK/match.json"
python3 - "$WORK/match.json" "${SUBMIT[@]}" "${MODIFIED[@]}" <<'EOF'
# Every image must have a match listed by hotline-uk.example.
import json, sys
results = json.load(open(sys.argv[1]))["results"]
missing = []
for f in sys.argv[2:]:
    origins = {m["origin"] for r in results if r.get("file") == f for m in r["matches"]}
    if "hotline-uk.example" not in origins:
        missing.append(f)
if missing:
    sys.exit("not matched to hotline-uk.example at the platform: " + ", ".join(missing))
print(f"   all {len(sys.argv) - 2} images matched entries of hotline-uk.example")
EOF

# ---------------------------------------------------------------- stop
say "stop every node (SIGTERM)"
for name in "${NAMES[@]}"; do
  stop "$name"
  printf '   %-8s exited 0\n' "$name"
done
OK=1
say "OK: the platform matched what hotline-uk submitted"

#!/usr/bin/env bash
# Runs schemathesis against docs/supervisor-openapi.yaml and the real `ld-supervisor serve`
# (a temp data directory, a free port, a key with every permission): fails on any 5xx or
# any answer that the document does not allow. Prints a skip notice when schemathesis is
# not installed (`pip install schemathesis`).
#
#   supervisor/tests/schemathesis.sh            # builds ld-supervisor with cargo first
#   LD_SUPERVISOR_BIN=path/to/ld-supervisor supervisor/tests/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=50 supervisor/tests/schemathesis.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
spec="$root/docs/supervisor-openapi.yaml"

if ! command -v schemathesis >/dev/null 2>&1; then
    echo "schemathesis.sh: SKIPPED: schemathesis is not installed (pip install schemathesis)"
    exit 0
fi

bin=${LD_SUPERVISOR_BIN:-}
if [[ -z $bin ]]; then
    cargo build --quiet -p ld-supervisor --manifest-path "$root/Cargo.toml"
    target=${CARGO_TARGET_DIR:-$root/target}
    bin="$target/debug/ld-supervisor"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

key=$("$bin" keys create --data "$work/data" \
    --permissions deployment:connector:manage,deployment:connector:read,deployment:node,supervisor:keys:manage \
    2>/dev/null)

# Schemathesis also sends calls without the key (ignored_auth): no rate limit here. Long
# polls are capped at 2 s so that `If-None-Match: *` with a long wait answers in time.
"$bin" serve --data "$work/data" --listen 127.0.0.1:0 --auth-failures-per-minute 0 \
    --max-wait-secs 2 \
    >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
base=
for _ in $(seq 1 200); do
    base=$(sed -n 's/^ld-supervisor listening on //p' "$work/stdout")
    [[ -n $base ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/stderr" >&2
        echo "schemathesis.sh: ld-supervisor exited before listening" >&2
        exit 1
    fi
    sleep 0.05
done
[[ -n $base ]] || { echo "schemathesis.sh: ld-supervisor did not start" >&2; exit 1; }
echo "schemathesis.sh: ld-supervisor on $base"

schemathesis run "$spec" \
    --url "$base" \
    --header "ld-api-key: $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header,unsupported_method \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --workers 2 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    "$@"

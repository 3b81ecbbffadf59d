#!/usr/bin/env bash
# cnnviz on one host: N Streamlit processes (serve.py: warm start + /_cnnviz/ready) and nginx in
# front of them with sticky sessions. Ctrl-C (or SIGTERM) stops everything it started.
#
#   deploy/serve.sh [N]                 N processes (default 2) and nginx, all on this host
#   deploy/serve.sh app [N]             only the processes: an app host behind a proxy elsewhere
#   deploy/serve.sh proxy HOST:PORT...  only nginx, in front of processes on other hosts
#
# Settings (environment):
#   CNNVIZ_LISTEN        where nginx listens                    127.0.0.1:8500
#   CNNVIZ_FIRST_PORT    processes listen on this port and up   8601
#   CNNVIZ_PORTS         explicit process ports ("8601 8602"), instead of N and CNNVIZ_FIRST_PORT
#   CNNVIZ_APP_ADDRESS   where processes listen (an app host: its private address)  127.0.0.1
#   CNNVIZ_RUN_DIR       logs, pid files, nginx's config and temp files              deploy/run
#   CNNVIZ_READY_TIMEOUT seconds to wait for every process's default model           300
#   NGINX, PYTHON        /usr/sbin/nginx, .venv/bin/python
# Every other variable (CNNVIZ_MAX_*, CNNVIZ_WORKERS, KERAS_HOME, ...) reaches the processes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROLE=all
case "${1:-}" in
  app|proxy) ROLE=$1; shift ;;
esac
LISTEN=${CNNVIZ_LISTEN:-127.0.0.1:8500}
ADDRESS=${CNNVIZ_APP_ADDRESS:-127.0.0.1}
RUN_DIR=${CNNVIZ_RUN_DIR:-$ROOT/deploy/run}
READY_TIMEOUT=${CNNVIZ_READY_TIMEOUT:-300}
NGINX=${NGINX:-/usr/sbin/nginx}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)

children=()
stop() {
  trap - EXIT INT TERM
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM

backends=()
if [ "$ROLE" = proxy ]; then
  [ $# -gt 0 ] || { echo "deploy/serve.sh proxy needs the processes' HOST:PORT (one or more)." >&2; exit 2; }
  backends=("$@")
else
  if [ -n "${CNNVIZ_PORTS:-}" ]; then
    read -r -a ports <<< "$CNNVIZ_PORTS"
  else
    n=${1:-2}
    first=${CNNVIZ_FIRST_PORT:-8601}
    ports=()
    for ((i = 0; i < n; i++)); do ports+=($((first + i))); done
  fi
  cd "$ROOT"  # .streamlit/config.toml is read from the working folder
  for port in "${ports[@]}"; do
    # MALLOC_ARENA_MAX=2: as `make run` (README, "Serving many visitors from one process").
    MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} "$PYTHON" -m streamlit run "$ROOT/serve.py" --server.port "$port" --server.address "$ADDRESS" \
      --server.headless true >"$RUN_DIR/cnnviz-$port.log" 2>&1 &
    children+=($!)
    echo $! >"$RUN_DIR/cnnviz-$port.pid"
    backends+=("$ADDRESS:$port")
  done
fi

# nginx only starts once every process has its default model: no visitor meets a cold one.
deadline=$((SECONDS + READY_TIMEOUT))
for backend in "${backends[@]}"; do
  until curl -fsS -o /dev/null "http://$backend/_cnnviz/ready" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "cnnviz at $backend is not ready after $READY_TIMEOUT s; see $RUN_DIR/cnnviz-${backend##*:}.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "cnnviz ready: http://$backend/"
done

if [ "$ROLE" = app ]; then
  wait
  exit 0
fi

[ -x "$NGINX" ] || { echo "nginx is missing ($NGINX): apt-get install nginx-light, or set NGINX." >&2; exit 1; }
mkdir -p "$RUN_DIR"/{client_body,proxy,fastcgi,uwsgi,scgi}
: >"$RUN_DIR/upstreams.conf"
for backend in "${backends[@]}"; do
  echo "server $backend max_fails=1 fail_timeout=10s;" >>"$RUN_DIR/upstreams.conf"
done
user_line=""
if [ "$(id -u)" = 0 ]; then
  # Run as root (a container, CI): without this nginx's workers would be `nobody`, who cannot
  # reach a private run directory. On a real server start serve.sh as an ordinary user.
  user_line="user root;"
  echo "warning: started as root, so nginx's workers run as root too." >&2
fi
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@LISTEN@|$LISTEN|g" -e "s|@DEPLOY_DIR@|$ROOT/deploy|g" \
  -e "s|@USER@|$user_line|g" "$ROOT/deploy/cnnviz.conf" >"$RUN_DIR/nginx.conf"
"$NGINX" -t -q -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"
"$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log" &
children+=($!)
echo $! >"$RUN_DIR/nginx-master.pid"
echo "cnnviz: http://$LISTEN/ (nginx in front of ${backends[*]}; logs in $RUN_DIR)"
# Serve until nginx stops; a process that dies is skipped by nginx (restart it with a supervisor).
wait "${children[-1]}"

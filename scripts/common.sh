# What scripts/test and scripts/bench share: the packages a fresh Debian machine lacks, the
# local databases (started if installed but down; their URLs exported for the tests and
# benches), and a three-node Galera cluster on loopback. Sourced, not run.

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
in_ci() { [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    fail "root is needed to run: $*"
  fi
}

install_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

# Host and port of a URL such as postgres://user@host:5432/db.
host_of() { local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}; echo "${rest%%:*}"; }
port_of() { local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}; [[ $rest == *:* ]] && echo "${rest##*:}" || echo "$2"; }

postgres_answers() { pg_isready -q -d "$OFFLINE_TEST_POSTGRES_URL" -t 2 >/dev/null 2>&1; }
mariadb_answers() {
  local url=$OFFLINE_TEST_MYSQL_URL user=root
  [[ ${url#*://} == *@* ]] && user=${url#*://} && user=${user%%@*} && user=${user%%:*}
  mariadb-admin --host="$(host_of "$url")" --port="$(port_of "$url" 3306)" --user="$user" \
    --connect-timeout=2 ping >/dev/null 2>&1
}
start_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] || return 0
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
}
start_mariadb() {
  [ -x /usr/sbin/mariadbd ] || return 0
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
}

# Makes sure one database answers; unsets its URL variable if it cannot be had outside CI.
ensure_database() {
  local name=$1 check=$2 start=$3 variable=$4
  if ! $check; then
    say "$name does not answer at ${!variable}; starting it"
    $start
    for _ in $(seq 1 30); do $check && break; sleep 1; done
  fi
  if $check; then
    echo "$name answers at ${!variable}"
  elif in_ci; then
    fail "$name does not answer at ${!variable}, and CI requires it"
  else
    echo "notice: $name does not answer at ${!variable}; its tests will be skipped" >&2
    unset "$variable"
  fi
}

# The slixmpp client of the example server's end-to-end tests, in a virtualenv kept at
# OFFLINE_E2E_VENV (default /var/tmp/offline-store-e2e-venv) and reused while it holds the pinned
# version; exports OFFLINE_TEST_PYTHON (a value set beforehand is kept). Without Python, the
# tests are skipped outside CI.
SLIXMPP_VERSION=1.17.0
prepare_e2e_client() {
  if [ -n "${OFFLINE_TEST_PYTHON:-}" ]; then
    echo "slixmpp's Python: $OFFLINE_TEST_PYTHON (OFFLINE_TEST_PYTHON)"
    return 0
  fi
  local venv=${OFFLINE_E2E_VENV:-/var/tmp/offline-store-e2e-venv}
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # In a subshell: without root or sudo, the tests are skipped rather than the run stopped
    # (outside CI).
    if ! ( install_packages python3 python3-venv ); then
      in_ci && fail "python3-venv cannot be installed, and CI runs the slixmpp end-to-end tests"
    fi
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    in_ci && fail "python3 is missing, and CI runs the slixmpp end-to-end tests"
    echo "notice: no python3; the end-to-end tests will be skipped" >&2
    return 0
  fi
  if ! "$venv/bin/python" -c "import slixmpp, sys; sys.exit(slixmpp.__version__ != '$SLIXMPP_VERSION')" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "slixmpp==$SLIXMPP_VERSION" \
      || { in_ci && fail "installing slixmpp $SLIXMPP_VERSION failed"; }
  fi
  if "$venv/bin/python" -c 'import slixmpp' 2>/dev/null; then
    export OFFLINE_TEST_PYTHON="$venv/bin/python"
    echo "slixmpp $SLIXMPP_VERSION in $venv"
  else
    echo "notice: slixmpp could not be installed; the end-to-end tests will be skipped" >&2
  fi
}

# Installs the build's packages, makes sure the databases answer, and starts the Galera
# cluster (unless OFFLINE_TEST_GALERA=skip outside CI); exports the URLs.
prepare_environment() {
  say "system packages"
  install_packages libclang-dev
  # The book's commands (offline-cli's book test) scrape the metrics endpoint with curl.
  command -v curl >/dev/null 2>&1 || install_packages curl
  command -v pg_isready >/dev/null 2>&1 || install_packages postgresql-client
  command -v mariadb-admin >/dev/null 2>&1 || install_packages mariadb-client

  say "slixmpp client"
  prepare_e2e_client

  say "databases"
  export OFFLINE_TEST_POSTGRES_URL="${OFFLINE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
  export OFFLINE_TEST_MYSQL_URL="${OFFLINE_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
  ensure_database PostgreSQL postgres_answers start_postgres OFFLINE_TEST_POSTGRES_URL
  ensure_database MariaDB mariadb_answers start_mariadb OFFLINE_TEST_MYSQL_URL

  if [ "${OFFLINE_TEST_GALERA:-}" = skip ] && ! in_ci; then
    echo "notice: OFFLINE_TEST_GALERA=skip; the Galera tests will be skipped" >&2
  else
    say "Galera cluster"
    install_packages mariadb-server galera-4 rsync
    GALERA_DIR=$(mktemp -d /tmp/offline-store-galera.XXXXXX)
    trap 'bash scripts/galera stop "$GALERA_DIR" || true; rm -rf "$GALERA_DIR"' EXIT
    OFFLINE_TEST_GALERA_URLS=$(bash scripts/galera start "$GALERA_DIR")
    export OFFLINE_TEST_GALERA_URLS OFFLINE_TEST_GALERA_DIR=$GALERA_DIR
    echo "Galera nodes at $OFFLINE_TEST_GALERA_URLS"
  fi
}

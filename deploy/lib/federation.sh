# Shared by deploy/local-federation and deploy/compose/setup (sourced, not run): the example
# federation's three agencies, finding or building the binaries, and enrolling a node with the
# real `tatmx` commands (ca init, node init, ca sign).
# shellcheck shell=bash
# The variables are read by the scripts that source this file.
# shellcheck disable=SC2034

# The federation and its agencies: team, role, discipline. The first is the core team.
FED_FEDERATION="lincoln-county-mdt.example"
FED_JURISDICTION="Lincoln County"
FED_TEAMS=(county-core lincoln-high riverside-mh)
declare -A FED_ROLE=([county-core]=core [lincoln-high]=affiliate [riverside-mh]=affiliate)
declare -A FED_DISCIPLINE=(
  [county-core]=law-enforcement
  [lincoln-high]=education
  [riverside-mh]=mental-health
)

fed_die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

# fed_find_bins REPO BIN_DIR PROFILE: sets TATMX and TATMX_NODE. With BIN_DIR, takes the
# binaries from there; otherwise builds them with cargo (PROFILE release or debug).
fed_find_bins() {
  local repo=$1 bin_dir=$2 profile=$3
  if [[ -z $bin_dir ]]; then
    command -v cargo >/dev/null || fed_die "cargo not found; build the binaries and pass --bin-dir"
    local flags=()
    [[ $profile == release ]] && flags=(--release)
    echo "building tatmx-node and tatmx ($profile) ..." >&2
    (cd "$repo" && cargo build --locked "${flags[@]}" -p tatmx-node -p tatmx-cli) ||
      fed_die "cargo build failed"
    bin_dir="$repo/target/$profile"
  fi
  TATMX="$bin_dir/tatmx"
  TATMX_NODE="$bin_dir/tatmx-node"
  [[ -x $TATMX && -x $TATMX_NODE ]] || fed_die "no tatmx and tatmx-node in $bin_dir"
}

# fed_make_ca CA_DIR: the federation CA, once (kept if CA_DIR already holds one).
fed_make_ca() {
  local ca_dir=$1
  [[ -f $ca_dir/ca.pem ]] && return 0
  "$TATMX" ca init --federation "$FED_FEDERATION" --dir "$ca_dir" >/dev/null
}

# fed_enrol CA_DIR TEAM TLS_DIR: the node's key and CSR made in TLS_DIR (tatmx node init), the
# certificate signed by the CA (tatmx ca sign), and the CA certificate copied beside them.
# Kept if TLS_DIR already holds a certificate.
fed_enrol() {
  local ca_dir=$1 team=$2 tls_dir=$3
  [[ -f $tls_dir/node.pem ]] && return 0
  mkdir -p "$tls_dir"
  "$TATMX" node init --federation "$FED_FEDERATION" --team "$team" --dir "$tls_dir" >/dev/null
  "$TATMX" ca sign "$tls_dir/node.csr" --team "$team" --ca-dir "$ca_dir" --days 365 \
    --role "${FED_ROLE[$team]}" --discipline "${FED_DISCIPLINE[$team]}" \
    --out "$tls_dir/node.pem" >/dev/null
  cp "$ca_dir/ca.pem" "$tls_dir/ca.pem"
}

# fed_node_toml TEAM DATA_DIR TLS_DIR LISTEN: the [node], [tls] and [federation_api] tables.
fed_node_toml() {
  local team=$1 data_dir=$2 tls_dir=$3 listen=$4
  cat <<EOF
[node]
federation = "$FED_FEDERATION"
team = "$team"
role = "${FED_ROLE[$team]}"
discipline = "${FED_DISCIPLINE[$team]}"
jurisdiction = "$FED_JURISDICTION"
data_dir = "$data_dir"

[tls]
ca = "$tls_dir/ca.pem"
cert = "$tls_dir/node.pem"
key = "$tls_dir/node.key"

[federation_api]
listen = "$listen"
EOF
}

# fed_peer_toml TEAM ENDPOINT: one [[peers]] table.
fed_peer_toml() {
  local team=$1 endpoint=$2
  cat <<EOF

[[peers]]
team = "$team"
endpoint = "$endpoint"
role = "${FED_ROLE[$team]}"
discipline = "${FED_DISCIPLINE[$team]}"
jurisdiction = "$FED_JURISDICTION"
EOF
}

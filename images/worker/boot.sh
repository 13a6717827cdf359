#!/bin/sh
# drbootstrap worker image: boot script (run by the user-data's runcmd, and bootcmd on later boots).
#
# Contract
#   usage: boot.sh CONFIG_DIR              (the local cloud also runs it with no argument before
#                                           the user-data: it then does nothing, user-data runs it)
#   reads  CONFIG_DIR/node.env             sh settings written by the user-data (no secrets):
#            DRB_ENVIRONMENT DRB_DOMAIN DRB_HOSTNAME DRB_ROLE DRB_MASTER_ADDRESS DRB_CONTROLLER
#            DRB_BROKER_HOST DRB_BROKER_PORT DRB_BROKER_PROTOCOL DRB_BROKER_KIND DRB_PUPPET_SERVER DRB_PUPPET_MODE
#            DRB_AGENT_KEY_FILE DRB_AUTOSIGN_TOKEN_FILE DRB_NODE_DIR DRB_RECIPES_DIR (apply mode:
#            manifests/site.pp and modules/ as in recipes/) DRB_PYTHON DRB_PUPPET_PORT
#            DRB_RECIPE_ROOT (the recipes' drb_root fact, exported to Puppet as FACTER_drb_root)
#          DRB_AGENT_KEY_FILE                this node's agent signing key (0600), if set
#          DRB_AGENT_KEYS_SETTINGS_FILE      ed25519: agent.yaml lines (key_id, trusted_keys_dir, policy)
#          DRB_AGENT_BACKUP_SETTINGS_FILE    agent.yaml lines: `backup:` volumes and their snapshot hooks
#          DRB_AUTOSIGN_TOKEN_FILE           this node's one-time Puppet autosign token (0600), if set
#          DRB_BROKER_CA_FILE                stomp+ssl: the environment's CA the agent verifies the broker by, if set
#          DRB_BROKER_REPLICAS               the broker cluster's other nodes (names): the agent fails over to them
#          DRB_BROKER_COOKIE_FILE            a broker node (role broker): the cluster's Erlang cookie (0600);
#                                            RabbitMQ runs here, supervised, joined to the master's node
#          DRB_SSH_AUTHORIZED_KEYS_FILE      the operator's public key: sshd runs (host key on the console)
#   writes /etc/resolv.conf, /etc/hostname (when reverse DNS knows the node), and binds /dev/null
#          over /proc/1/environ when root cannot read it (see below),
#          DRB_NODE_DIR/agent.yaml, DRB_NODE_DIR/puppet/{puppet.conf,csr_attributes.yaml},
#          DRB_NODE_DIR/agent.pid, DRB_NODE_DIR/agent.log
#   starts `drbootstrap agent --config DRB_NODE_DIR/agent.yaml` in the background (no systemd);
#          its reboot action runs /run/drb-cloud/reboot on the local cloud, `shutdown -r now` elsewhere.
#   a broker node: its RabbitMQ under a supervisor (restarts logged in DRB_NODE_DIR/supervisor.log).
#   Safe to run again on every boot: each step rewrites its file, the agent is restarted.
set -eu

if [ $# -eq 0 ] && [ -n "${DRB_CLOUD_INSTANCE_ID:-}" ]; then
    exit 0  # the local cloud's image hook: this image is configured by its user-data
fi
CONFIG_DIR=${1:-/etc/drbootstrap}
. "$CONFIG_DIR/node.env"
NODE_DIR=${DRB_NODE_DIR:-/var/lib/drbootstrap/node}
mkdir -p "$NODE_DIR"
# A failed boot puts the node in ERROR with the console's tail as the reason: show ours there.
console_fd() { { true >&3; } 2>/dev/null; }
on_exit() {
    status=$?
    if [ "$status" -ne 0 ] && console_fd && [ -f "$NODE_DIR/boot.log" ]; then
        { echo "drbootstrap worker boot failed (exit $status); the end of $NODE_DIR/boot.log:"
          tail -n 12 "$NODE_DIR/boot.log"; } >&3
    fi
}
trap on_exit EXIT
PYTHON=$(command -v "${DRB_PYTHON:-python3}")
if command -v drbootstrap >/dev/null 2>&1; then DRB=drbootstrap; else DRB="$PYTHON -m drbootstrap"; fi

log() { echo "drbootstrap worker boot: $*"; }

# 1. Resolver: the master answers for the environment's domain (forward and reverse).
printf 'nameserver %s\nsearch %s\noptions timeout:2 attempts:2\n' "$DRB_MASTER_ADDRESS" "$DRB_DOMAIN" >/etc/resolv.conf

# 2. Our address: the first global IPv4 address.
own_address() {
    ip -4 -o addr show scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }'
}
ADDRESS=$(own_address)
log "address ${ADDRESS:-unknown}"
# Facter reads /proc/1/environ. Where PID 1 is not ours (the local cloud's nodes share the host's
# PIDs), Puppet printed "Error: Facter: Permission denied": bind an empty file over it, in our mounts.
if [ -e /proc/1/environ ] && ! cat /proc/1/environ >/dev/null 2>&1; then
    mount --bind /dev/null /proc/1/environ 2>/dev/null || log "Facter will report it cannot read /proc/1/environ"
fi

# 3. Our name, from reverse DNS of our address. The master may be starting, or (a reboot during an
# outage of the master) its DNS may be down: after up to DRB_DNS_WAIT_SECONDS (default 20) a node
# that was named keeps its name, one that was not keeps its cloud name, and the boot goes on (a
# reboot never fails for want of the master's DNS); the controller renames it later.
# With +short, dig prints its own failures (";; communications error ...") on stdout: only a line
# that is a host name is an answer, and "no answer" differs from "no such record".
is_host_name() {
    printf '%s\n' "$1" | grep -Eqx '([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
}
DNS_ANSWERED=no
reverse_name() {  # sets NAME (empty when there is no PTR record) and DNS_ANSWERED
    NAME=""
    if command -v dig >/dev/null 2>&1; then
        answer=$(dig +short +time=2 +tries=1 -x "$1" "@$DRB_MASTER_ADDRESS" 2>/dev/null) && dig_status=0 || dig_status=$?
        case "$answer" in
            *";;"*) return 0 ;;  # dig's own error text: the server did not answer
        esac
        [ "$dig_status" -eq 0 ] || return 0
        DNS_ANSWERED=yes
        answer=$(printf '%s\n' "$answer" | head -n 1)
    else
        answer=$(getent hosts "$1" 2>/dev/null | awk '{ print $2; exit }') || true
        [ -n "$answer" ] && DNS_ANSWERED=yes
    fi
    answer=${answer%.}
    if [ -n "$answer" ] && is_host_name "$answer"; then NAME=$answer; fi
}
# The name this node already has: the one a previous boot wrote to /etc/hostname, else the cloud's.
kept_name() {
    kept=""
    [ -r /etc/hostname ] && read -r kept </etc/hostname 2>/dev/null || true
    if [ -n "$kept" ] && is_host_name "$kept"; then echo "$kept"; else hostname; fi
}
NAME=""
DNS_WAIT=${DRB_DNS_WAIT_SECONDS:-20}
# 1/100 s since boot (`date +%s` has whole seconds: a wait ended up to 1 s early).
uptime_cs() { read -r up _ </proc/uptime; echo $(( ${up%.*} * 100 + 1${up#*.} - 100 )); }
if [ -n "$ADDRESS" ]; then
    started=$(uptime_cs)
    while :; do
        reverse_name "$ADDRESS"
        [ -n "$NAME" ] && break
        waited=$(( $(uptime_cs) - started ))
        # An answer without a PTR record: a few tries for a master still writing its hosts file.
        # No answer at all: wait up to DNS_WAIT seconds for the DNS to come back, then go on.
        if [ "$DNS_ANSWERED" = yes ] && [ "$waited" -ge 200 ]; then break; fi
        [ "$waited" -ge $(( DNS_WAIT * 100 )) ] && break
        sleep 1
    done
fi
if [ -n "$NAME" ]; then
    SHORT=${NAME%%.*}
    if hostname "$SHORT" 2>/dev/null; then
        echo "$SHORT" >/etc/hostname
        log "named $NAME by reverse DNS"
    else
        NAME=$(hostname)
        log "could not take the name $SHORT; keeping $NAME"
    fi
else
    NAME=$(kept_name)
    [ "$NAME" = "$(hostname)" ] || hostname "$NAME" 2>/dev/null || NAME=$(hostname)
    if [ "$DNS_ANSWERED" = yes ]; then
        log "no PTR record for ${ADDRESS:-?} yet; keeping $NAME until the controller renames this node"
    else
        log "the master's DNS at $DRB_MASTER_ADDRESS did not answer; keeping the name $NAME"
    fi
fi
case "$NAME" in *.*) FQDN=$NAME ;; *) FQDN=$NAME.$DRB_DOMAIN ;; esac

# 3b. SSH, when an authorized key is given: the operator's `drbootstrap ssh` and `logs`. The host
#     key is made once per node and printed on the console, where the controller pins it from.
running() {
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}
if [ -n "${DRB_SSH_AUTHORIZED_KEYS_FILE:-}" ] && [ -r "$DRB_SSH_AUTHORIZED_KEYS_FILE" ] && [ -n "$ADDRESS" ] &&
        [ -x /usr/sbin/sshd ]; then
    SSH_DIR=$NODE_DIR/ssh
    mkdir -p "$SSH_DIR" /run/sshd
    [ -f "$SSH_DIR/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "root@$FQDN" -f "$SSH_DIR/ssh_host_ed25519_key"
    cat >"$SSH_DIR/sshd_config" <<EOF
ListenAddress $ADDRESS
Port ${DRB_SSH_PORT:-22}
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $DRB_SSH_AUTHORIZED_KEYS_FILE
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
    running "$SSH_DIR/sshd.pid" || /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log" </dev/null ||
        log "sshd did not start (see $SSH_DIR/sshd.log)"
    if console_fd; then
        { echo "-----BEGIN SSH HOST KEY KEYS-----"; cat "$SSH_DIR/ssh_host_ed25519_key.pub"
          echo "-----END SSH HOST KEY KEYS-----"; } >&3
    fi
fi

# 4. Puppet agent: its own confdir/vardir/ssldir under the node dir; the token goes in the CSR.
PUPPET_DIR=$NODE_DIR/puppet
mkdir -p "$PUPPET_DIR/var" "$PUPPET_DIR/ssl" "$PUPPET_DIR/run" "$PUPPET_DIR/log"
# keylength 2048, as the master's CA: a 4096-bit key took 1-3 s of the first run here.
cat >"$PUPPET_DIR/puppet.conf" <<EOF
[main]
certname = $FQDN
keylength = 2048
server = $DRB_PUPPET_SERVER
serverport = ${DRB_PUPPET_PORT:-8140}
vardir = $PUPPET_DIR/var
ssldir = $PUPPET_DIR/ssl
rundir = $PUPPET_DIR/run
logdir = $PUPPET_DIR/log
[agent]
runinterval = 1800
EOF
if [ -n "${DRB_AUTOSIGN_TOKEN_FILE:-}" ] && [ -r "$DRB_AUTOSIGN_TOKEN_FILE" ]; then
    umask 077
    # challengePassword (1.2.840.113549.1.9.7): the master's autosign policy checks and burns it.
    printf 'custom_attributes:\n  1.2.840.113549.1.9.7: "%s"\n' "$(cat "$DRB_AUTOSIGN_TOKEN_FILE")" \
        >"$PUPPET_DIR/csr_attributes.yaml"
    umask 022
fi

# 5. The drbootstrap agent: answers discovery, reboot and puppet requests over the broker.
BROKERS="\"$DRB_BROKER_PROTOCOL://$DRB_BROKER_HOST:$DRB_BROKER_PORT\""
for replica in ${DRB_BROKER_REPLICAS:-}; do BROKERS="$BROKERS, \"$DRB_BROKER_PROTOCOL://$replica:$DRB_BROKER_PORT\""; done
cat >"$NODE_DIR/agent.yaml" <<EOF
identity: $FQDN
brokers: [$BROKERS]
broker_kind: ${DRB_BROKER_KIND:-activemq}
key_file: ${DRB_AGENT_KEY_FILE:-null}
role: $DRB_ROLE
ip: ${ADDRESS:-null}
pid_file: $NODE_DIR/agent.pid
state_dir: $NODE_DIR/agent-state
log_file: $NODE_DIR/agent.log
puppet:
  mode: $DRB_PUPPET_MODE
  server: $DRB_PUPPET_SERVER
  certname: $FQDN
  confdir: $PUPPET_DIR
  vardir: $PUPPET_DIR/var
  ssldir: $PUPPET_DIR/ssl
  rundir: $PUPPET_DIR/run
  logdir: $PUPPET_DIR/log
EOF
if [ "$DRB_PUPPET_MODE" = server ]; then
    # Autosign answers at once; without it, the controller signs explicitly and runs Puppet again.
    printf '  server_port: %s\n  waitforcert: 0\n' "${DRB_PUPPET_PORT:-8140}" >>"$NODE_DIR/agent.yaml"
fi
if [ "$DRB_PUPPET_MODE" = apply ]; then
    printf '  manifest: %s\n  modulepath: %s\n' "$DRB_RECIPES_DIR/manifests/site.pp" "$DRB_RECIPES_DIR/modules" \
        >>"$NODE_DIR/agent.yaml"
fi
if [ -x /run/drb-cloud/reboot ]; then
    # The local cloud: reboot through its in-node command (`shutdown` would act on the host).
    printf 'reboot:\n  command: /run/drb-cloud/reboot\n  delay: 1\n' >>"$NODE_DIR/agent.yaml"
fi

if [ -n "${DRB_BROKER_CA_FILE:-}" ]; then
    echo "tls_ca: $DRB_BROKER_CA_FILE" >>"$NODE_DIR/agent.yaml"  # stomp+ssl: the environment's CA
fi
# The volumes this node backs up (from the spec): their mounts and snapshot hooks.
if [ -n "${DRB_AGENT_BACKUP_SETTINGS_FILE:-}" ] && [ -r "$DRB_AGENT_BACKUP_SETTINGS_FILE" ]; then
    cat "$DRB_AGENT_BACKUP_SETTINGS_FILE" >>"$NODE_DIR/agent.yaml"
fi
# Per-client keys (ed25519): this node's key id, the operator's public key it trusts, the policy.
if [ -n "${DRB_AGENT_KEYS_SETTINGS_FILE:-}" ] && [ -r "$DRB_AGENT_KEYS_SETTINGS_FILE" ]; then
    cat "$DRB_AGENT_KEYS_SETTINGS_FILE" >>"$NODE_DIR/agent.yaml"
fi

# 5b. A broker node: RabbitMQ joins the master's node, supervised (restarted, rejoining) by Python.
if [ -n "${DRB_BROKER_COOKIE_FILE:-}" ] && [ -n "$ADDRESS" ]; then
    echo "rabbitmq_dir: $NODE_DIR/rabbitmq" >>"$NODE_DIR/agent.yaml"
    nohup "$PYTHON" -m drbootstrap.images.master_services broker --kind rabbitmq --base-dir "$NODE_DIR/rabbitmq" \
        --host "$ADDRESS" --port "$DRB_BROKER_PORT" --cluster-seed "$DRB_MASTER_ADDRESS" --cookie-file \
        "$DRB_BROKER_COOKIE_FILE" --supervise "$NODE_DIR/rabbitmq.supervisor.pid" </dev/null \
        >>"$NODE_DIR/supervisor.log" 2>&1 3>&- &
fi
# An earlier run's agent (ours: its command line names our agent.yaml) ends before ours starts.
if running "$NODE_DIR/agent.pid" && grep -qa "$NODE_DIR/agent.yaml" "/proc/$pid/cmdline"; then
    kill "$pid" 2>/dev/null || true; n=0
    while running "$NODE_DIR/agent.pid" && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
    kill -9 "$pid" 2>/dev/null || true
fi
if [ -n "${DRB_RECIPE_ROOT:-}" ]; then
    mkdir -p "$DRB_RECIPE_ROOT"
    export FACTER_drb_root="$DRB_RECIPE_ROOT"  # the agent's Puppet runs inherit it
fi
# shellcheck disable=SC2086 # DRB may be "python -m drbootstrap"
nohup $DRB agent --config "$NODE_DIR/agent.yaml" </dev/null >>"$NODE_DIR/agent.log" 2>&1 &
echo $! >"$NODE_DIR/agent.pid"
log "agent started as $FQDN (pid $!)"

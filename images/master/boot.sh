#!/bin/sh
# drbootstrap master image: boot script (first draft; run by the user-data's runcmd).
#
# Contract
#   usage: boot.sh [CONFIG_DIR]            (default /etc/drbootstrap)
#   reads  CONFIG_DIR/node.env             sh settings written by the user-data (no secrets):
#            DRB_ENVIRONMENT DRB_DOMAIN DRB_HOSTNAME (the controller's short name) DRB_ROLE
#            DRB_MASTER_ADDRESS (empty: our first global IPv4) DRB_BROKER_PORT DRB_BROKER_PROTOCOL
#            DRB_PUPPET_SERVER DRB_PUPPET_MODE DRB_AGENT_KEY_FILE DRB_UPSTREAM_DNS DRB_NODE_DIR
#          DRB_AGENT_KEY_FILE                the master agent's signing key (0600), if set
#   env    DRB_PYTHON                        the Python with drbootstrap installed (default python3)
#   writes DRB_NODE_DIR/dns/{dnsmasq.conf,hosts,dnsmasq.pid}     (the dns agent edits hosts)
#          DRB_NODE_DIR/activemq/                                (broker conf and data)
#          DRB_NODE_DIR/puppet/{puppet.conf,autosign,code/}      (puppetserver, policy autosign)
#          DRB_NODE_DIR/puppetserver/conf.d/                     (copy of Debian's, our dirs)
#          CONFIG_DIR/autosign-tokens.json (0600, created empty; the controller issues tokens)
#          DRB_NODE_DIR/agent.yaml, agent.pid, agent.log, *.pid
#          /etc/resolv.conf, /etc/hostname
#   starts dnsmasq, ActiveMQ (drbootstrap.broker), puppetserver (server mode only) and
#          `drbootstrap agent` with the dns agent, each in the background (no systemd).
#   Recipes (recipes/: manifests, modules) arrive later over SSH, swapped in whole:
#          push_tree(target, "recipes", f"{node_dir}/puppet/code/environments/production", replace=True)
set -eu

CONFIG_DIR=${1:-/etc/drbootstrap}
. "$CONFIG_DIR/node.env"
NODE_DIR=${DRB_NODE_DIR:-/var/lib/drbootstrap/node}
IMAGES_DIR=$(cd "$(dirname "$0")/.." && pwd)
# The Python that has drbootstrap installed (absolute: puppetserver runs autosign with its own PATH).
PYTHON=$(command -v "${DRB_PYTHON:-python3}")
mkdir -p "$NODE_DIR"

log() { echo "drbootstrap master boot: $*"; }
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ADDRESS=${DRB_MASTER_ADDRESS:-}
if [ -z "$ADDRESS" ]; then
    ADDRESS=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
fi
FQDN=$DRB_HOSTNAME.$DRB_DOMAIN
hostname "$DRB_HOSTNAME"
echo "$DRB_HOSTNAME" >/etc/hostname
log "controller $FQDN at $ADDRESS"

# 1. Names: dnsmasq answers the domain from the hosts file the dns agent edits.
DNS_DIR=$NODE_DIR/dns
mkdir -p "$DNS_DIR"
HOSTS=$DNS_DIR/hosts
touch "$HOSTS"
grep -v " $FQDN " "$HOSTS" >"$HOSTS.new" || true
echo "$ADDRESS $FQDN $DRB_HOSTNAME" >>"$HOSTS.new"
mv "$HOSTS.new" "$HOSTS"
UPSTREAM_ARGS=""
for upstream in ${DRB_UPSTREAM_DNS:-}; do UPSTREAM_ARGS="$UPSTREAM_ARGS --upstream $upstream"; done
# --user root: the hosts file lives in the node dir, which dnsmasq's own user may not be able to
# read again on SIGHUP (the local cloud keeps node dirs under a private state directory).
# shellcheck disable=SC2086 # word splitting of UPSTREAM_ARGS is intended
"$PYTHON" -m drbootstrap.images.master_services dnsmasq-config --domain "$DRB_DOMAIN" --listen "$ADDRESS" \
    --hosts-file "$HOSTS" --pid-file "$DNS_DIR/dnsmasq.pid" --out "$DNS_DIR/dnsmasq.conf" \
    --user root $UPSTREAM_ARGS
if running "$DNS_DIR/dnsmasq.pid"; then kill "$(cat "$DNS_DIR/dnsmasq.pid")"; sleep 1; fi
dnsmasq -C "$DNS_DIR/dnsmasq.conf"     # daemonises; writes its pid file
printf 'nameserver %s\nsearch %s\n' "$ADDRESS" "$DRB_DOMAIN" >/etc/resolv.conf

# 2. Broker: ActiveMQ STOMP on our address, via drbootstrap.broker (runs as root, own dirs).
if ! running "$NODE_DIR/activemq.pid"; then
    "$PYTHON" -m drbootstrap.images.master_services broker --base-dir "$NODE_DIR/activemq" \
        --host "$ADDRESS" --port "$DRB_BROKER_PORT" >"$NODE_DIR/activemq.pid"
fi

# 3. Puppet server, with policy autosign: one-time tokens, checked and burnt per certname.
PUPPET_DIR=$NODE_DIR/puppet
TOKENS=$CONFIG_DIR/autosign-tokens.json
mkdir -p "$PUPPET_DIR/code/environments/production/manifests" "$PUPPET_DIR/code/environments/production/modules"
[ -f "$TOKENS" ] || (umask 077 && echo '{}' >"$TOKENS")
cat >"$PUPPET_DIR/autosign" <<EOF
#!/bin/sh
DRB_AUTOSIGN_TOKENS='$TOKENS' exec '$PYTHON' -m drbootstrap.images.autosign "\$@"
EOF
chmod 0755 "$PUPPET_DIR/autosign"
cat >"$PUPPET_DIR/puppet.conf" <<EOF
[main]
certname = $FQDN
server = $FQDN
dns_alt_names = $DRB_HOSTNAME,$FQDN,$DRB_PUPPET_SERVER
codedir = $PUPPET_DIR/code
vardir = $PUPPET_DIR/var
ssldir = $PUPPET_DIR/ssl
rundir = $PUPPET_DIR/run
logdir = $PUPPET_DIR/log
[server]
autosign = $PUPPET_DIR/autosign
EOF
if [ "$DRB_PUPPET_MODE" = server ] && ! running "$NODE_DIR/puppetserver.pid"; then
    CONF_D=$NODE_DIR/puppetserver/conf.d
    mkdir -p "$CONF_D" "$PUPPET_DIR/var" "$PUPPET_DIR/run" "$PUPPET_DIR/log"
    cp /etc/puppet/puppetserver/conf.d/*.conf "$CONF_D/"
    sed -i -e "s|server-conf-dir: .*|server-conf-dir: $PUPPET_DIR|" \
        -e "s|server-code-dir: .*|server-code-dir: $PUPPET_DIR/code|" \
        -e "s|server-var-dir: .*|server-var-dir: $PUPPET_DIR/var|" \
        -e "s|server-run-dir: .*|server-run-dir: $PUPPET_DIR/run|" \
        -e "s|server-log-dir: .*|server-log-dir: $PUPPET_DIR/log|" "$CONF_D/puppetserver.conf"
    sed -i -e "s|ssl-host: .*|ssl-host: $ADDRESS|" "$CONF_D/webserver.conf"
    puppet ssl bootstrap --confdir "$PUPPET_DIR" >/dev/null 2>&1 || true  # CA is made on first start
    (cd /usr/share/puppetserver && nohup java -Xms512m -Xmx1g -Djruby.lib=/usr/share/jruby/lib \
        -Dlogappender=STDOUT -jar puppetserver.jar --config "$CONF_D" \
        --bootstrap-config /etc/puppet/puppetserver/services.d </dev/null >"$PUPPET_DIR/log/puppetserver.out" 2>&1 &
        echo $! >"$NODE_DIR/puppetserver.pid")
fi

# 4. The drbootstrap agent, with the dns agent that edits the hosts file and reloads dnsmasq.
cat >"$NODE_DIR/agent.yaml" <<EOF
identity: $FQDN
brokers: ["$DRB_BROKER_PROTOCOL://$ADDRESS:$DRB_BROKER_PORT"]
key_file: ${DRB_AGENT_KEY_FILE:-null}
role: master
ip: $ADDRESS
pid_file: $NODE_DIR/agent.pid
log_file: $NODE_DIR/agent.log
dns:
  hosts_file: $HOSTS
  dnsmasq_pid_file: $DNS_DIR/dnsmasq.pid
  domain: $DRB_DOMAIN
puppet:
  mode: $DRB_PUPPET_MODE
  certname: $FQDN
  confdir: $PUPPET_DIR
EOF
if running "$NODE_DIR/agent.pid"; then kill "$(cat "$NODE_DIR/agent.pid")" || true; fi
nohup drbootstrap agent --config "$NODE_DIR/agent.yaml" </dev/null >>"$NODE_DIR/agent.log" 2>&1 &
echo $! >"$NODE_DIR/agent.pid"
log "services started: dnsmasq, activemq, ${DRB_PUPPET_MODE} puppet, agent (pid $!); images in $IMAGES_DIR"

#!/bin/sh
# drbootstrap master image: boot script (run by the user-data's runcmd, and bootcmd on later boots).
#
# Contract
#   usage: boot.sh CONFIG_DIR              (the local cloud also runs it with no argument before
#                                           the user-data: it then does nothing, user-data runs it)
#   reads  CONFIG_DIR/node.env             sh settings written by the user-data (no secrets):
#            DRB_ENVIRONMENT DRB_DOMAIN DRB_HOSTNAME (the controller's short name) DRB_ROLE
#            DRB_MASTER_ADDRESS (empty: our first global IPv4) DRB_BROKER_PORT DRB_BROKER_PROTOCOL
#            DRB_BROKER_KIND (activemq, the default, or rabbitmq)
#            DRB_BROKER_REPLICAS (the broker cluster's other nodes, names: agents fail over to them)
#            DRB_PUPPET_SERVER DRB_PUPPET_MODE DRB_PUPPET_PORT DRB_AGENT_KEY_FILE DRB_UPSTREAM_DNS
#            DRB_NODE_DIR DRB_PYTHON DRB_SSH_AUTHORIZED_KEYS_FILE DRB_SSH_PORT
#            DRB_AGENT_BACKUP_SETTINGS_FILE (agent.yaml `dumps:` lines: the master-state dump)
#          DRB_MASTER_STATE_FILE             master.restore: where to fetch the earlier master's state
#                                            (0600: a short-lived URL, the archive's data key, its
#                                            sha256), put back by drbootstrap.images.master_state
#                                            before puppetserver starts; then removed
#          DRB_AGENT_KEY_FILE                the master agent's signing key (0600), if set
#          DRB_AGENT_KEYS_SETTINGS_FILE      ed25519: agent.yaml lines (key_id, trusted_keys_dir, policy)
#          DRB_SSH_AUTHORIZED_KEYS_FILE      the operator's public key(s) for root over SSH, if set
#          DRB_BROKER_CA_FILE                stomp+ssl: the environment's CA the agent trusts, if set
#          DRB_BROKER_COOKIE_FILE            a broker cluster's Erlang cookie (0600): our RabbitMQ
#                                            node is its first, which the broker nodes join
#          DRB_BROKER_ISSUER_{CERT,KEY}_FILE stomp+ssl: the master's issuing CA (key 0600), if set
#          /var/cache/drbootstrap/puppetserver/aot-*.jar  puppetserver's Clojure compiled when the
#                                            image was made (drbootstrap.images.puppetserver_aot), if any
#   writes DRB_NODE_DIR/dns/{dnsmasq.conf,hosts,dnsmasq.pid,dnsmasq.log}   (the dns agent edits hosts)
#          DRB_NODE_DIR/activemq/ (activemq.log; tls/ with stomp+ssl)    (broker conf and data)
#            or DRB_NODE_DIR/rabbitmq/ (rabbitmq.log, rabbitmq.conf 0600; tls/) with broker.kind rabbitmq;
#            DRB_NODE_DIR/broker.log links to the broker's log, DRB_NODE_DIR/<kind>.pid holds its pid
#            (RabbitMQ's: its Erlang VM, whose death is the node's)
#          DRB_NODE_DIR/puppet/{puppet.conf,autosign,code/,ca/,ssl/,log/puppetserver{,-access}.log}
#          DRB_NODE_DIR/puppetserver/{conf.d/,services.d/,logback.xml,request-logging.xml}
#                                          (copies of Debian's, with our dirs and fewer services)
#          DRB_NODE_DIR/ssh/{ssh_host_ed25519_key,sshd_config,sshd.pid,sshd.log}
#          CONFIG_DIR/autosign-tokens.json (0600, created empty; the controller arms tokens)
#          DRB_NODE_DIR/agent.yaml, agent.pid, agent.log, *.pid
#          DRB_NODE_DIR/supervisor.{pids,log}  (the supervision loops; one line per restart)
#          /etc/resolv.conf, /etc/hostname
#   prints the SSH host public keys on the console (fd 3 when the user-data passes it, else
#          stdout) between cloud-init's -----BEGIN/END SSH HOST KEY KEYS----- lines
#   starts sshd (when an authorized key is given), dnsmasq (as user dnsmasq when it can read the
#          hosts file, else root), ActiveMQ (drbootstrap.broker) or RabbitMQ (drbootstrap.rabbitmq),
#          puppetserver (server mode) and `drbootstrap agent` with the dns agent, in the background,
#          then supervises them as systemd's Restart=on-failure would: one that dies is started
#          again after a backoff (1 s, doubling to 60 s; back to 1 s once it has run 5 min).
#          Readiness is probed from outside: drbootstrap.images.probes.probe_master.
#   Recipes (recipes/: manifests, modules) arrive over SSH, swapped in whole:
#          drbootstrap.images.master_access.push_recipes -> DRB_NODE_DIR/puppet/code/environments/production
set -eu

if [ $# -eq 0 ] && [ -n "${DRB_CLOUD_INSTANCE_ID:-}" ]; then
    exit 0  # the local cloud's image hook: this image is configured by its user-data
fi
CONFIG_DIR=${1:-/etc/drbootstrap}
. "$CONFIG_DIR/node.env"
NODE_DIR=${DRB_NODE_DIR:-/var/lib/drbootstrap/node}
IMAGES_DIR=$(cd "$(dirname "$0")/.." && pwd)
# The Python that has drbootstrap installed (absolute: puppetserver runs autosign with its own PATH).
PYTHON=$(command -v "${DRB_PYTHON:-python3}")
if command -v drbootstrap >/dev/null 2>&1; then DRB=drbootstrap; else DRB="$PYTHON -m drbootstrap"; fi
PUPPET_PORT=${DRB_PUPPET_PORT:-8140}
mkdir -p "$NODE_DIR"
# A failed boot puts the node in ERROR with the console's tail as the reason: show ours there.
console_fd() { { true >&3; } 2>/dev/null; }
on_exit() {
    status=$?
    if [ "$status" -ne 0 ] && console_fd && [ -f "$NODE_DIR/boot.log" ]; then
        { echo "drbootstrap master boot failed (exit $status); the end of $NODE_DIR/boot.log:"
          tail -n 12 "$NODE_DIR/boot.log"; } >&3
    fi
}
trap on_exit EXIT

log() { echo "drbootstrap master boot: $*"; }
# A pid file's process is alive (a zombie left by a supervision loop is not).
running() {
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}
# The console: fd 3 when the user-data hands it over (its stdout goes to boot.log), else stdout.
console() { if console_fd; then cat >&3; else cat; fi; }

# Booting again without a reboot: the last boot's supervision loops stop first (only processes of
# this node: a pid from before a reboot may be another process's now).
if [ -f "$NODE_DIR/supervisor.pids" ]; then
    for pid in $(cat "$NODE_DIR/supervisor.pids"); do
        if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ]; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$NODE_DIR/supervisor.pids"
fi

ADDRESS=${DRB_MASTER_ADDRESS:-}
if [ -z "$ADDRESS" ]; then
    ADDRESS=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
fi
FQDN=$DRB_HOSTNAME.$DRB_DOMAIN
hostname "$DRB_HOSTNAME"
echo "$DRB_HOSTNAME" >/etc/hostname
log "controller $FQDN at $ADDRESS"
# Facter reads /proc/1/environ (is this a container?). Where PID 1 is not ours to read (a node in
# its host's PID namespace, as on the local cloud here), every Puppet run printed "Error: Facter:
# Permission denied"; an empty file bound over it, in this node's own mount namespace, says "no".
if [ -e /proc/1/environ ] && ! cat /proc/1/environ >/dev/null 2>&1; then
    mount --bind /dev/null /proc/1/environ 2>/dev/null || log "Facter will report it cannot read /proc/1/environ"
fi

# 0. SSH, first: the controller pushes recipes over it before the broker is up. The host key is
#    made once per node and printed on the console, where the controller pins it from.
if [ -n "${DRB_SSH_AUTHORIZED_KEYS_FILE:-}" ] && [ -r "$DRB_SSH_AUTHORIZED_KEYS_FILE" ]; then
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
Subsystem sftp internal-sftp
EOF
    start_sshd() { /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log" </dev/null; }
    running "$SSH_DIR/sshd.pid" || start_sshd
    { echo "-----BEGIN SSH HOST KEY KEYS-----"; cat "$SSH_DIR/ssh_host_ed25519_key.pub"
      echo "-----END SSH HOST KEY KEYS-----"; } | console
fi

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
# dnsmasq drops root for its own user when that user can read the hosts file again on SIGHUP;
# a node dir under a private (0700) state directory, as on the local cloud, keeps it root.
DNSMASQ_USER=root
if id dnsmasq >/dev/null 2>&1 && runuser -u dnsmasq -- test -r "$HOSTS" 2>/dev/null; then
    DNSMASQ_USER=dnsmasq
    [ ! -f "$DNS_DIR/dnsmasq.log" ] || chown dnsmasq "$DNS_DIR/dnsmasq.log"
else
    log "dnsmasq runs as root: user dnsmasq cannot read $HOSTS"
fi
# shellcheck disable=SC2086 # word splitting of UPSTREAM_ARGS is intended
"$PYTHON" -m drbootstrap.images.master_services dnsmasq-config --domain "$DRB_DOMAIN" --listen "$ADDRESS" \
    --hosts-file "$HOSTS" --pid-file "$DNS_DIR/dnsmasq.pid" --out "$DNS_DIR/dnsmasq.conf" \
    --log-file "$DNS_DIR/dnsmasq.log" --user "$DNSMASQ_USER" $UPSTREAM_ARGS
if running "$DNS_DIR/dnsmasq.pid"; then kill "$(cat "$DNS_DIR/dnsmasq.pid")"; sleep 1; fi
start_dnsmasq() { dnsmasq -C "$DNS_DIR/dnsmasq.conf"; }  # daemonises; writes its pid file
start_dnsmasq
printf 'nameserver %s\nsearch %s\n' "$ADDRESS" "$DRB_DOMAIN" >/etc/resolv.conf

# 2. Puppet server, with policy autosign: one-time tokens, checked and burnt per certname.
#    Started before the broker: it is by far the slowest to listen (JVM + JRuby).
PUPPET_DIR=$NODE_DIR/puppet
TOKENS=$CONFIG_DIR/autosign-tokens.json
mkdir -p "$PUPPET_DIR/code/environments/production/manifests" "$PUPPET_DIR/code/environments/production/modules" \
    "$PUPPET_DIR/var" "$PUPPET_DIR/run" "$PUPPET_DIR/log"
[ -f "$TOKENS" ] || (umask 077 && echo '{}' >"$TOKENS")
# A rebuilt master keeps its earlier state (master.restore): its Puppet CA (and own certificate)
# and/or code, fetched, checked by digest and put back before puppetserver starts (once: the
# fetch file is removed, a later boot keeps what is there).
if [ -n "${DRB_MASTER_STATE_FILE:-}" ] && [ -f "$DRB_MASTER_STATE_FILE" ]; then
    "$PYTHON" -m drbootstrap.images.master_state restore --node-dir "$NODE_DIR" --fetch-file "$DRB_MASTER_STATE_FILE"
fi
cat >"$PUPPET_DIR/autosign" <<EOF
#!/bin/sh
DRB_AUTOSIGN_TOKENS='$TOKENS' exec '$PYTHON' -m drbootstrap.images.autosign "\$@"
EOF
chmod 0755 "$PUPPET_DIR/autosign"
# A CA carried over (master.restore, or an earlier boot): a rebuilt worker asks again under its old
# name with a new key, which the CA would refuse as a duplicate; its one-time token still decides.
DUPLICATE_CERTS=""
[ ! -f "$PUPPET_DIR/ca/ca_crt.pem" ] || DUPLICATE_CERTS="allow_duplicate_certs = true"
# keylength 2048: Puppet 7's 4096-bit keys took 20-70 s of the CA's first start here (the CA's key
# and this server's, made in Java under the C1-only JIT below); 2048-bit RSA, Puppet's default
# until 6, is fine for the life of an environment's certificates (the agents use it too).
cat >"$PUPPET_DIR/puppet.conf" <<EOF
[main]
certname = $FQDN
keylength = 2048
server = $FQDN
serverport = $PUPPET_PORT
dns_alt_names = $DRB_HOSTNAME,$FQDN,$DRB_PUPPET_SERVER
codedir = $PUPPET_DIR/code
vardir = $PUPPET_DIR/var
ssldir = $PUPPET_DIR/ssl
rundir = $PUPPET_DIR/run
logdir = $PUPPET_DIR/log
[server]
cadir = $PUPPET_DIR/ca
autosign = $PUPPET_DIR/autosign
$DUPLICATE_CERTS
EOF
if [ "$DRB_PUPPET_MODE" = server ] && ! running "$NODE_DIR/puppetserver.pid"; then
    # Debian's launcher reads /etc/default/puppetserver (the host's config path, a 1 GB heap):
    # run the jar ourselves with a copy of conf.d pointing at this node's directories.
    PS_DIR=$NODE_DIR/puppetserver
    CONF_D=$PS_DIR/conf.d
    mkdir -p "$CONF_D" "$PS_DIR/services.d"
    cp /etc/puppet/puppetserver/conf.d/*.conf "$CONF_D/"
    # One JRuby, interpreted (compile-mode off): its JIT costs more at start than it saves on
    # the few catalogs of a recovery.
    sed -i -e "s|server-conf-dir: .*|server-conf-dir: $PUPPET_DIR|" \
        -e "s|server-code-dir: .*|server-code-dir: $PUPPET_DIR/code|" \
        -e "s|server-var-dir: .*|server-var-dir: $PUPPET_DIR/var|" \
        -e "s|server-run-dir: .*|server-run-dir: $PUPPET_DIR/run|" \
        -e "s|server-log-dir: .*|server-log-dir: $PUPPET_DIR/log|" \
        -e "s|^jruby-puppet: {|jruby-puppet: {\n    max-active-instances: 1\n    compile-mode: off|" "$CONF_D/puppetserver.conf"
    # TLS 1.2: under TLS 1.3 the JDK sends a session ticket after a response, and Ruby's Net::HTTP
    # (the agent, `puppetserver ca`) then blocks on reusing that connection until Jetty's 30 s idle
    # timeout (Ruby bug #19017): a first Puppet run waited 30 s for its certificate, in most runs.
    sed -i -e "s|ssl-host: .*|ssl-host: $ADDRESS|" -e "s|ssl-port: .*|ssl-port: $PUPPET_PORT|" \
        -e "s|access-log-config: .*|access-log-config: $PS_DIR/request-logging.xml|" \
        -e "s|^webserver: {|webserver: {\n    ssl-protocols: [TLSv1.2]|" "$CONF_D/webserver.conf"
    cat >"$PS_DIR/logback.xml" <<EOF
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %-5p [%c{2}] %m%n</pattern></encoder>
  </appender>
  <logger name="org.eclipse.jetty" level="WARN"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
    cat >"$PS_DIR/request-logging.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$PUPPET_DIR/log/puppetserver-access.log</file>
    <encoder><pattern>%h %l %u [%t] "%r" %s %b "%i{User-Agent}" %D</pattern></encoder>
  </appender>
  <appender-ref ref="FILE" />
</configuration>
EOF
    sed -i -e "s|logging-config: .*|logging-config: $PS_DIR/logback.xml|" "$CONF_D/global.conf"
    # Services a recovery does not use: update checks, the admin API, the JMX-over-HTTP endpoint.
    grep -h -v -e analytics-service -e puppet-admin-service -e metrics-webservice \
        /etc/puppet/puppetserver/services.d/*.cfg >"$PS_DIR/services.d/bootstrap.cfg"
    # Clojure compiled when the image was made (drbootstrap.images.puppetserver_aot), else from source.
    PS_JAR=/usr/share/puppetserver/puppetserver.jar
    if AOT_JAR=$("$PYTHON" -m drbootstrap.images.master_services puppetserver-aot 2>/dev/null); then
        PS_START="-cp $AOT_JAR:$PS_JAR puppetlabs.trapperkeeper.main"
    else
        PS_START="-jar $PS_JAR"
        log "puppetserver compiles its Clojure at start: the image has no compiled jar for this version"
    fi
    # Small and single-instance: a 2-core machine runs several of these in tests. C1 only and the
    # serial collector: the least CPU to start, which is what a recovery waits for.
    # --add-opens: lets JRuby spawn processes natively (Facter's commands on the server), no warning.
    # shellcheck disable=SC2086 # PS_START is several words
    start_puppetserver() {
        (cd "$PUPPET_DIR" && nohup java -Xms256m -Xmx768m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
            --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED \
            -Djruby.lib=/usr/share/jruby/lib $PS_START --config "$CONF_D" --bootstrap-config "$PS_DIR/services.d" \
            </dev/null >>"$PUPPET_DIR/log/puppetserver.log" 2>&1 &
            echo $! >"$NODE_DIR/puppetserver.pid")
    }
    : >"$PUPPET_DIR/log/puppetserver.log"
    start_puppetserver
fi

# 3. Broker: ActiveMQ STOMP on our address, via drbootstrap.broker (runs as root, own dirs), or
#    RabbitMQ with rabbitmq_stomp via drbootstrap.rabbitmq (own node name, epmd, cookie and user).
#    stomp+ssl: its certificate, for our address and name, is issued at every start by the master's
#    issuing CA from the user-data (every client trusts the environment's CA above it); without one,
#    self-signed on the first boot and kept. Plain STOMP then listens on loopback only.
BROKER_TLS_ARGS=""
if [ "$DRB_BROKER_PROTOCOL" = stomp+ssl ]; then BROKER_TLS_ARGS="--tls --tls-name $FQDN"; fi
if [ "$DRB_BROKER_PROTOCOL" = stomp+ssl ] && [ -n "${DRB_BROKER_ISSUER_KEY_FILE:-}" ]; then
    BROKER_TLS_ARGS="$BROKER_TLS_ARGS --issuer-cert $DRB_BROKER_ISSUER_CERT_FILE --issuer-key $DRB_BROKER_ISSUER_KEY_FILE"
fi
if [ -n "${DRB_BROKER_COOKIE_FILE:-}" ]; then
    BROKER_TLS_ARGS="$BROKER_TLS_ARGS --cluster-seed $ADDRESS --cookie-file $DRB_BROKER_COOKIE_FILE"
fi
BROKER_KIND=${DRB_BROKER_KIND:-activemq}
BROKER_DIR=$NODE_DIR/$BROKER_KIND
mkdir -p "$BROKER_DIR"
ln -sfn "$BROKER_KIND/$BROKER_KIND.log" "$NODE_DIR/broker.log"
start_broker() {
    # shellcheck disable=SC2086 # BROKER_TLS_ARGS is several words
    "$PYTHON" -m drbootstrap.images.master_services broker --kind "$BROKER_KIND" --base-dir "$BROKER_DIR" \
        --host "$ADDRESS" --port "$DRB_BROKER_PORT" $BROKER_TLS_ARGS >"$NODE_DIR/$BROKER_KIND.pid"
}
running "$NODE_DIR/$BROKER_KIND.pid" || start_broker

# 4. The drbootstrap agent, with the dns agent that edits the hosts file and reloads dnsmasq.
BROKERS="\"$DRB_BROKER_PROTOCOL://$ADDRESS:$DRB_BROKER_PORT\""
for replica in ${DRB_BROKER_REPLICAS:-}; do BROKERS="$BROKERS, \"$DRB_BROKER_PROTOCOL://$replica:$DRB_BROKER_PORT\""; done
cat >"$NODE_DIR/agent.yaml" <<EOF
identity: $FQDN
brokers: [$BROKERS]
broker_kind: $BROKER_KIND
key_file: ${DRB_AGENT_KEY_FILE:-null}
role: master
ip: $ADDRESS
pid_file: $NODE_DIR/agent.pid
state_dir: $NODE_DIR/agent-state
log_file: $NODE_DIR/agent.log
dns:
  hosts_file: $HOSTS
  dnsmasq_pid_file: $DNS_DIR/dnsmasq.pid
  domain: $DRB_DOMAIN
puppet:
  mode: $DRB_PUPPET_MODE
  certname: $FQDN
  confdir: $PUPPET_DIR
  vardir: $PUPPET_DIR/var
EOF
if [ "$DRB_BROKER_PROTOCOL" = stomp+ssl ] && [ -n "${DRB_BROKER_CA_FILE:-}" ]; then
    echo "tls_ca: $DRB_BROKER_CA_FILE" >>"$NODE_DIR/agent.yaml"  # the environment's CA
elif [ "$DRB_BROKER_PROTOCOL" = stomp+ssl ]; then
    echo "tls_ca: $BROKER_DIR/tls/broker-cert.pem" >>"$NODE_DIR/agent.yaml"
fi
if [ -x /run/drb-cloud/reboot ]; then
    # The local cloud: reboot through its in-node command (`shutdown` would act on the host).
    printf 'reboot:\n  command: /run/drb-cloud/reboot\n  delay: 1\n' >>"$NODE_DIR/agent.yaml"
fi
# The dumps agent's one command here: the master's own state for `backup` (drbootstrap.images.master_state).
if [ -n "${DRB_AGENT_BACKUP_SETTINGS_FILE:-}" ] && [ -r "$DRB_AGENT_BACKUP_SETTINGS_FILE" ]; then
    cat "$DRB_AGENT_BACKUP_SETTINGS_FILE" >>"$NODE_DIR/agent.yaml"
fi
# Per-client keys (ed25519): this node's key id, the operator's public key it trusts, the policy.
if [ -n "${DRB_AGENT_KEYS_SETTINGS_FILE:-}" ] && [ -r "$DRB_AGENT_KEYS_SETTINGS_FILE" ]; then
    cat "$DRB_AGENT_KEYS_SETTINGS_FILE" >>"$NODE_DIR/agent.yaml"
fi
if running "$NODE_DIR/agent.pid"; then kill "$(cat "$NODE_DIR/agent.pid")" || true; fi
# shellcheck disable=SC2086 # DRB may be "python -m drbootstrap"
start_agent() {
    (nohup $DRB agent --config "$NODE_DIR/agent.yaml" </dev/null >>"$NODE_DIR/agent.log" 2>&1 &
     echo $! >"$NODE_DIR/agent.pid")
}
start_agent
log "services started: dnsmasq, $BROKER_KIND, ${DRB_PUPPET_MODE} puppet, agent (pid $(cat "$NODE_DIR/agent.pid")); images in $IMAGES_DIR"

# 5. Supervision: what systemd's Restart=on-failure (RestartSec with a growing backoff) does for
#    a cloud image's units. One loop per service; a restart is one line in supervisor.log.
supervise() {  # NAME PID_FILE START_FUNCTION
    set +e
    trap - EXIT
    backoff=1 healthy=0
    while sleep 2; do
        if running "$2"; then
            healthy=$((healthy + 2))
            [ "$healthy" -lt 300 ] || backoff=1
            continue
        fi
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1 is not running (pid file $2); restarting it in $backoff s"
        sleep "$backoff"
        if "$3" && sleep 1 && running "$2"; then
            echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1 restarted (pid $(cat "$2"))"
        else
            echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1 failed to restart; see its log"
        fi
        healthy=0 backoff=$((backoff * 2))
        [ "$backoff" -le 60 ] || backoff=60
    done
}
supervised() {  # NAME PID_FILE START_FUNCTION, in the background, its pid kept for the next boot
    # exec: a redirection on the call itself would keep a copy of boot.sh's stdout open (dash
    # saves it while a function runs), and whoever reads boot.sh's output would wait forever.
    (exec </dev/null >>"$NODE_DIR/supervisor.log" 2>&1 3>&-; supervise "$@") &
    echo $! >>"$NODE_DIR/supervisor.pids"
}
supervised dnsmasq "$DNS_DIR/dnsmasq.pid" start_dnsmasq
supervised "$BROKER_KIND" "$NODE_DIR/$BROKER_KIND.pid" start_broker
! command -v start_puppetserver >/dev/null || supervised puppetserver "$NODE_DIR/puppetserver.pid" start_puppetserver
supervised agent "$NODE_DIR/agent.pid" start_agent
[ -z "${SSH_DIR:-}" ] || supervised sshd "$SSH_DIR/sshd.pid" start_sshd
log "services supervised (restarts logged in $NODE_DIR/supervisor.log)"

# A long-running process without systemd: started in the background, its pid in a file, and
# started again only when that pid is no longer alive (so every Puppet run keeps it up).
define drb::daemon (
  String $command,
  String $pid_file,
  String $log_file,
) {
  exec { "drb-daemon-${title}":
    command  => "nohup ${command} >>${log_file} 2>&1 </dev/null & echo \$! >${pid_file}",
    unless   => "test -f ${pid_file} && kill -0 \$(cat ${pid_file})",
    provider => shell,
  }
}

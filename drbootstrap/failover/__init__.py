"""Site failover and failback: the environment rebuilt at another site (a second provider block),
verified, and only then the public DNS records moved there and the old site fenced.

    result = run_switch(spec, state_dir, to_site="b", command="failover", emit=print)
"""

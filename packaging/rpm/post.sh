# astromesh %post: the astromeshd name, data dir and config permissions; enable, do not start.
ln -sf astromesh /usr/bin/astromeshd
mkdir -p /var/lib/astromesh
chown astromesh:astromesh /var/lib/astromesh
chmod 750 /var/lib/astromesh
chown -R root:astromesh /etc/astromesh
chmod 750 /etc/astromesh /etc/astromesh/agents
find /etc/astromesh -type f -name '*.yaml' -exec chmod 640 {} +
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl enable astromeshd.service >/dev/null 2>&1 || :
fi
exit 0

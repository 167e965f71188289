# astromesh %postun: on erase (rpm has no purge), remove the data and the system user.
if [ "$1" -eq 0 ]; then
    rm -f /usr/bin/astromeshd
    rm -rf /var/lib/astromesh
    userdel astromesh >/dev/null 2>&1 || :
    groupdel astromesh >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0

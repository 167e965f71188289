# astromesh %pre: the system user exists before the files are owned by it.
getent group astromesh >/dev/null || groupadd --system astromesh
getent passwd astromesh >/dev/null || useradd --system --gid astromesh --home-dir /var/lib/astromesh \
    --no-create-home --shell /sbin/nologin --comment "Astromesh daemon" astromesh
exit 0

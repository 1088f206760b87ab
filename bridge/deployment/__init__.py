"""Operations: health checks, deployment records, systemd units and the sd_notify watchdog."""

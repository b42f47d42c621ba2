//! Installing keyward into a host: sshd, PAM, systemd or cron.

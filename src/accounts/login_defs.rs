//! `/etc/login.defs`, as far as keyward needs it: where the system groups end.
//!
//! A group with a GID up to `SYS_GID_MAX` belongs to the distribution or a package (sudo, adm,
//! docker, shadow…) and often grants privilege; the prefix mapping must never create or fill
//! one (only `adopt_groups` names one, on purpose). Parsing is pure; [`SystemGids::read`] is
//! the only function that touches the file, and a missing or unreadable file means the
//! defaults shadow-utils itself would use.

use std::path::Path;

/// shadow-utils' defaults: `GID_MIN` 1000, and `SYS_GID_MAX` = `GID_MIN` - 1.
pub const DEFAULT_GID_MIN: u32 = 1000;
pub const PATH: &str = "/etc/login.defs";

/// The GIDs of system groups: 0 to `max`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemGids {
    pub max: u32,
}

impl Default for SystemGids {
    fn default() -> Self {
        SystemGids {
            max: DEFAULT_GID_MIN - 1,
        }
    }
}

impl SystemGids {
    pub fn contains(self, gid: u32) -> bool {
        gid <= self.max
    }

    /// From login.defs text, the way shadow-utils' getdef reads it: `NAME VALUE` lines, `#`
    /// comments, the last definition wins, numbers in decimal, `0x` hex or `0` octal. Without
    /// `SYS_GID_MAX`, `GID_MIN` - 1; a value that is not a number is ignored.
    pub fn parse(text: &str) -> SystemGids {
        let mut sys_gid_max = None;
        let mut gid_min = None;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            let (Some(name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let slot = match name {
                "SYS_GID_MAX" => &mut sys_gid_max,
                "GID_MIN" => &mut gid_min,
                _ => continue,
            };
            if let Some(n) = number(value.trim_matches('"')) {
                *slot = Some(n);
            }
        }
        let max = sys_gid_max
            .or_else(|| gid_min.map(|m: u32| m.saturating_sub(1)))
            .unwrap_or(DEFAULT_GID_MIN - 1);
        SystemGids { max }
    }

    /// Reads `path` (normally [`PATH`]); defaults when it cannot be read.
    pub fn read(path: &Path) -> SystemGids {
        std::fs::read_to_string(path)
            .map(|text| SystemGids::parse(&text))
            .unwrap_or_default()
    }
}

fn number(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m2_debian_login_defs_and_defaults() {
        // As Debian 12 ships it: SYS_GID_MAX is commented out.
        let debian =
            "GID_MIN\t\t 1000\nGID_MAX\t\t60000\n#SYS_GID_MIN\t\t  100\n#SYS_GID_MAX\t\t  999\n";
        assert_eq!(SystemGids::parse(debian).max, 999);
        assert_eq!(SystemGids::parse("").max, 999);
        assert_eq!(SystemGids::default().max, 999);
        assert_eq!(
            SystemGids::read(Path::new("/nonexistent/login.defs")).max,
            999
        );
    }

    #[test]
    fn m2_sys_gid_max_wins_then_gid_min_and_the_last_definition_counts() {
        assert_eq!(SystemGids::parse("SYS_GID_MAX 499\nGID_MIN 500").max, 499);
        assert_eq!(SystemGids::parse("GID_MIN 2000").max, 1999);
        assert_eq!(
            SystemGids::parse("SYS_GID_MAX 499\nSYS_GID_MAX 4999").max,
            4999
        );
        assert_eq!(SystemGids::parse("SYS_GID_MAX 0x3e7").max, 999);
        assert_eq!(SystemGids::parse("SYS_GID_MAX 01747").max, 999);
        // Not a number: ignored, as shadow-utils does.
        assert_eq!(SystemGids::parse("SYS_GID_MAX lots").max, 999);
        let gids = SystemGids::parse("SYS_GID_MAX 999");
        assert!(gids.contains(0) && gids.contains(27) && gids.contains(999));
        assert!(!gids.contains(1000));
    }
}

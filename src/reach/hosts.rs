//! `keyward hosts`: the instances `proxy` would resolve names to, as a table for people or
//! one JSON object per line for scripts.
//!
//! Invariants: terminated instances are left out (EC2 lists them for an hour and `proxy`
//! never picks them); a Name tag is printed escaped in the table (JSON escapes it itself).

use crate::ec2::{Ec2Error, Instance, InstanceFilter, Instances};

/// Every instance matching `filters` that is not terminated, by name, then id.
pub async fn list<E: Instances>(
    ec2: &E,
    filters: &[InstanceFilter],
) -> Result<Vec<Instance>, Ec2Error> {
    let mut found = ec2.instances(filters).await?;
    found.retain(|i| i.state != "terminated");
    found.sort_by(|a, b| (&a.name_tag, &a.id).cmp(&(&b.name_tag, &b.id)));
    Ok(found)
}

/// The table: a header, then one aligned row per instance.
pub fn table(instances: &[Instance]) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 6]> = instances
        .iter()
        .map(|i| {
            [
                i.id.clone(),
                dash(i.name_tag.as_deref().map(crate::logging::untrusted)),
                i.state.clone(),
                dash(i.private_ip.map(|ip| ip.to_string())),
                dash(i.public_ip.map(|ip| ip.to_string())),
                dash(i.vpc_id.clone()),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "STATE", "PRIVATE", "PUBLIC", "VPC"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One JSON object per instance, one per line.
pub fn json_lines(instances: &[Instance]) -> String {
    instances
        .iter()
        .filter_map(|i| serde_json::to_string(i).ok())
        .map(|line| line + "\n")
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::issuer::handler::tests::block_on;
    use crate::reach::resolve::tests::{instance, FakeEc2};

    #[test]
    fn the_table_lists_live_instances_by_name_with_their_addresses() {
        let ec2 = FakeEc2 {
            instances: vec![
                instance(
                    "i-0123456789abcdef1",
                    "web-2",
                    "running",
                    "10.0.0.2",
                    "3.3.3.2",
                ),
                instance("i-0123456789abcdef0", "db", "stopped", "10.0.0.1", ""),
                instance("i-0123456789abcdef9", "gone", "terminated", "10.0.0.9", ""),
                instance(
                    "i-0123456789abcdef3",
                    "x\u{1b}[2J",
                    "running",
                    "10.0.0.3",
                    "",
                ),
            ],
            ..FakeEc2::default()
        };
        let found = block_on(list(&ec2, &[])).unwrap();
        let text = table(&found);
        assert_eq!(
            text,
            "ID                   NAME        STATE    PRIVATE   PUBLIC   VPC\n\
             i-0123456789abcdef0  db          stopped  10.0.0.1  -        -\n\
             i-0123456789abcdef1  web-2       running  10.0.0.2  3.3.3.2  -\n\
             i-0123456789abcdef3  x\\u{1b}[2J  running  10.0.0.3  -        -\n"
        );
        let json = json_lines(&found);
        assert_eq!(json.lines().count(), 3);
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["id"], "i-0123456789abcdef0");
        assert_eq!(first["private_ip"], "10.0.0.1");
        assert!(!json.contains('\u{1b}'));
    }
}

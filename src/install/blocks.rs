//! Marked blocks in files keyward shares with the host (sshd_config, /etc/pam.d/sshd).
//!
//! keyward only ever adds whole lines, between a `# BEGIN keyward` and a `# END keyward` line,
//! so that taking them out again gives back the admin's file byte for byte. These functions are
//! pure text transformations; they must never touch any line outside a block, and a damaged
//! block (a BEGIN without its END) is an error rather than a guess.

use super::InstallError;

/// The first line of every keyward block starts with this.
pub const BEGIN: &str = "# BEGIN keyward";
/// The last line of every keyward block.
pub const END: &str = "# END keyward";

/// Lines of `text` as (start offset, line without its `\n`). A last line without `\n` counts.
fn lines_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        out.push((start, line.strip_suffix('\n').unwrap_or(line)));
        start += line.len();
    }
    out
}

fn is_begin(line: &str) -> bool {
    let line = line.trim_end_matches('\r');
    line == BEGIN || line.starts_with(&format!("{BEGIN} "))
}

fn is_end(line: &str) -> bool {
    line.trim_end_matches('\r') == END
}

/// Whether `text` holds a keyward block (complete or not).
pub fn has_block(text: &str) -> bool {
    text.lines().any(is_begin)
}

/// Inserts `block` (whole lines, each ending in `\n`) before line number `line` (0-based) of
/// `text`; a `line` past the end appends, adding the `\n` the last line lacks.
pub fn insert_block_at(text: &str, line: usize, block: &str) -> String {
    let lines = lines_with_offsets(text);
    let mut out = String::with_capacity(text.len() + block.len() + 1);
    match lines.get(line) {
        Some(&(offset, _)) => {
            out.push_str(&text[..offset]);
            out.push_str(block);
            out.push_str(&text[offset..]);
        }
        None => {
            out.push_str(text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(block);
        }
    }
    out
}

/// Removes every keyward block (BEGIN line to END line, inclusive) and nothing else.
/// `insert_block_at` followed by `remove_block` gives back the original text, byte for byte,
/// except that appending to a file without a final newline cannot be undone exactly (install
/// never appends).
pub fn remove_block(text: &str) -> Result<String, InstallError> {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    let mut begin_line = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        if in_block {
            if is_begin(bare) {
                return Err(InstallError::DamagedBlock {
                    line: number + 1,
                    reason: format!("a second {BEGIN:?} before {END:?}"),
                });
            }
            if is_end(bare) {
                in_block = false;
            }
        } else if is_begin(bare) {
            in_block = true;
            begin_line = number + 1;
        } else if is_end(bare) {
            return Err(InstallError::DamagedBlock {
                line: number + 1,
                reason: format!("{END:?} without {BEGIN:?}"),
            });
        } else {
            out.push_str(line);
        }
    }
    if in_block {
        return Err(InstallError::DamagedBlock {
            line: begin_line,
            reason: format!("{BEGIN:?} without {END:?}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BLOCK: &str = "# BEGIN keyward\nx y z\n# END keyward\n";

    #[test]
    fn insert_then_remove_gives_back_the_text_byte_for_byte() {
        for text in [
            "",
            "a\n",
            "a\nb\n",
            "a\nb",
            "no newline at all",
            "\n\n",
            "  indented\n\ttab\n",
        ] {
            for line in 0..3 {
                let with = insert_block_at(text, line, BLOCK);
                if line < text.split_inclusive('\n').count() {
                    assert_eq!(remove_block(&with).unwrap(), text, "{text:?} at {line}");
                }
                assert!(has_block(&with));
            }
        }
    }

    #[test]
    fn insert_at_top_keeps_every_original_line_after_the_block() {
        assert_eq!(insert_block_at("a\nb", 0, BLOCK), format!("{BLOCK}a\nb"));
        assert_eq!(insert_block_at("a\nb", 1, BLOCK), format!("a\n{BLOCK}b"));
        assert_eq!(insert_block_at("", 0, BLOCK), BLOCK);
        assert_eq!(insert_block_at("a", 5, BLOCK), format!("a\n{BLOCK}"));
    }

    #[test]
    fn remove_block_leaves_text_without_a_block_alone() {
        let text = "# BEGIN other\nkeep\n# END other\n# BEGIN keywardish\n";
        assert_eq!(remove_block(text).unwrap(), text);
        assert!(!has_block(text));
    }

    #[test]
    fn remove_block_takes_out_blocks_with_a_suffix_on_the_begin_line() {
        let text = "a\n# BEGIN keyward (managed)\nx\n# END keyward\nb\n";
        assert_eq!(remove_block(text).unwrap(), "a\nb\n");
    }

    #[test]
    fn damaged_blocks_are_errors_naming_the_line() {
        let err = remove_block("a\n# BEGIN keyward\nx\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(remove_block("# END keyward\n").is_err());
        assert!(remove_block("# BEGIN keyward\n# BEGIN keyward\n# END keyward\n").is_err());
    }
}

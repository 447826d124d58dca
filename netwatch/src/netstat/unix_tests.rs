use super::*;
use crate::netstat::flags::Opts;

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/netstat/proc/net/unix");

#[test]
fn parses_the_fixture() {
    let rows = parse(FIXTURE).unwrap();
    assert_eq!(rows.len(), 8);
    // netstat reads the path with %s: cut at the first blank.
    assert_eq!(
        rows[0],
        UnixRow { refcnt: 2, proto: 0, flags: 0, kind: 2, state: 1, inode: 16689046, path: b"/tmp/nw".to_vec() }
    );
    assert!(rows[1].path.is_empty());
    assert_eq!(rows[7].path, b"@nw-abstract");
    assert!(rows[7].listening() && !rows[0].listening());
}

#[test]
fn rejects_garbage_and_skips_blank_lines() {
    assert!(parse(b"no header\n").is_err());
    assert!(parse(b"Num RefCount\nnot a row\n").is_err());
    assert_eq!(parse(b"Num RefCount\n\n").unwrap(), Vec::new());
}

#[test]
fn formats_like_netstat() {
    let rows = parse(FIXTURE).unwrap();
    let o = Opts { all: true, programs: true, ..Opts::default() };
    let mut out = Vec::new();
    format_row(&mut out, &rows[7], &o, &Programs::default());
    let line = "unix  2      [ ACC ]     STREAM     LISTENING     16689045 -                    @nw-abstract\n";
    assert_eq!(String::from_utf8(out).unwrap(), line);
    let hidden = Opts::default();
    assert!(!shown(&rows[7], &hidden) && shown(&rows[0], &hidden));
}

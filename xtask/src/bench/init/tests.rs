use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parses_options() {
    let o = Options::parse(&args(&["--spawns", "7", "--no-build", "--no-arm64"])).unwrap();
    assert_eq!((o.spawns, o.build, o.arm64), (7, false, false));
    let o = Options::parse(&args(&["bench-init", "--spawns=3"])).unwrap();
    assert_eq!((o.spawns, o.build, o.arm64), (3, true, true));
    assert!(Options::parse(&args(&["--spawns", "0"])).is_err());
    assert!(Options::parse(&args(&["--spawns"])).is_err());
    assert!(Options::parse(&args(&["--bogus"])).is_err());
}

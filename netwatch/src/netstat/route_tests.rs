use super::*;

const ROUTE: &str = include_str!("../../tests/fixtures/netstat/proc/net/route");
const ROUTE6: &str = include_str!("../../tests/fixtures/netstat/proc/net/ipv6_route");

#[test]
fn parses_ipv4_routes() {
    let routes = parse4(ROUTE).unwrap();
    assert_eq!(routes.len(), 6);
    assert_eq!(routes[0].gateway, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(routes[1].dest, Ipv4Addr::new(192, 0, 2, 0));
    assert_eq!(routes[1].mask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!((routes[2].flags, routes[2].metric, routes[2].use_, routes[2].mss), (7, 100, 5, 1400));
    assert!(parse4("bogus header\n").is_err());
}

#[test]
fn resolves_default_and_networks_without_numeric() {
    let mut names = Names::new(false, true, true);
    let mut out = Vec::new();
    let routes = parse4(ROUTE).unwrap();
    print4(&mut out, &routes[..2], 2, false, &mut names);
    let text = String::from_utf8(out).unwrap();
    // 0.0.0.0/0 is `default`; a 0.0.0.0 gateway stays numeric.
    assert!(text.contains("\ndefault         "), "{text}");
    assert!(text.contains(" 0.0.0.0         255.255.255.0   U "), "{text}");
}

#[test]
fn parses_ipv6_routes() {
    let routes = parse6(ROUTE6);
    assert_eq!(routes.len(), 8);
    let last = routes.last().unwrap();
    assert_eq!((last.metric, last.iface.as_str()), (-1, "lo"));
    let mut out = Vec::new();
    print6(&mut out, &routes[..1], false, &mut Names::new(false, true, true));
    assert!(String::from_utf8(out).unwrap().contains(" [::]  "));
}

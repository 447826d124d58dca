//! Name resolution as net-tools does it (lib/inet.c, lib/inet6.c): hosts
//! through the C library (`/etc/hosts`, then DNS, per nsswitch), services
//! from `/etc/services`, raw protocol names from `/etc/protocols`, networks
//! from `/etc/networks`, users through `getpwuid`.
//!
//! Every answer is cached for the run. Host lookups run on worker threads
//! and are abandoned after [`LOOKUP_TIMEOUT`]: the address is then printed
//! numerically, where netstat would have waited for the resolver.

use std::{
    collections::HashMap,
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    rc::Rc,
    sync::mpsc,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

use super::{addr, services::Services};

/// The longest netwatch waits for one reverse lookup.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);
/// Lookups in flight at once.
const PARALLEL: usize = 32;

/// `numeric` bits of lib/inet.c `INET_rresolve`.
pub const NUM_DEFAULT: u32 = 0x8000;
pub const NUM_HOST_BIT: u32 = 0x4000;

#[derive(Default)]
pub struct Names {
    pub num_host: bool,
    pub num_port: bool,
    pub num_user: bool,
    hosts: HashMap<IpAddr, Option<String>>,
    services: Option<Services>,
    users: HashMap<u32, String>,
    /// Column text per address and per (port, protocol): most rows repeat them.
    texts: FxHashMap<IpAddr, Rc<str>>,
    ports: FxHashMap<(u16, &'static str), Rc<str>>,
}

impl Names {
    pub fn new(num_host: bool, num_port: bool, num_user: bool) -> Self {
        Self { num_host, num_port, num_user, ..Self::default() }
    }

    /// Resolves these addresses in parallel (bounded in time), so that the
    /// formatting that follows finds them in the cache.
    pub fn prefetch(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut todo: Vec<IpAddr> =
            ips.into_iter().filter(|ip| needs_lookup(ip) && !self.hosts.contains_key(ip)).collect();
        todo.sort_unstable();
        todo.dedup();
        for chunk in todo.chunks(PARALLEL) {
            for (ip, name) in lookup_all(chunk) {
                self.hosts.insert(ip, name);
            }
        }
    }

    fn host_name(&mut self, ip: IpAddr) -> Option<String> {
        if let Some(name) = self.hosts.get(&ip) {
            return name.clone();
        }
        let name = lookup_all(&[ip]).pop().and_then(|(_, name)| name);
        self.hosts.insert(ip, name.clone());
        name
    }

    /// lib/inet.c `INET_rresolve`. `numeric` holds netstat's flag bits:
    /// 0x0fff any → numeric, [`NUM_DEFAULT`] → `default` for 0.0.0.0/0,
    /// [`NUM_HOST_BIT`] → a host even without host bits. `netmask` is in
    /// network byte order, as netstat compares it.
    pub fn inet(&mut self, ip: Ipv4Addr, numeric: u32, netmask: u32) -> String {
        if numeric & 0x0fff != 0 {
            return ip.to_string();
        }
        let ad = u32::from_ne_bytes(ip.octets());
        if ad == 0 {
            return match (netmask, numeric & NUM_DEFAULT != 0) {
                (0, true) => "default".into(),
                (0, false) => "*".into(),
                _ => "0.0.0.0".into(),
            };
        }
        let host = ad & !netmask != 0 || numeric & NUM_HOST_BIT != 0;
        let name = if host {
            self.host_name(IpAddr::V4(ip))
        } else {
            self.services().network(u32::from_be_bytes(ip.octets())).map(str::to_owned)
        };
        let mut name = name.unwrap_or_else(|| ip.to_string());
        name.truncate(127);
        name
    }

    /// lib/inet.c `INET_sprint` (the host/net test uses 0xffffff00 as netstat does).
    pub fn inet_sprint(&mut self, ip: Ipv4Addr) -> String {
        self.inet(ip, u32::from(self.num_host), 0xffff_ff00)
    }

    /// lib/inet6.c `INET6_sprint`: `[::]` for the unspecified address when
    /// resolving, `getnameinfo` otherwise, v4-mapped tails unwrapped.
    pub fn inet6(&mut self, ip: Ipv6Addr, numeric: bool) -> String {
        let text = if numeric {
            addr::ntop6(&ip)
        } else if ip.is_unspecified() {
            "[::]".to_owned()
        } else {
            self.host_name(IpAddr::V6(ip)).filter(|n| n.len() < 128).unwrap_or_else(|| addr::ntop6(&ip))
        };
        addr::fix_v4_address(&text, &ip).to_owned()
    }

    /// The address column text for either family, as the socket views print it.
    pub fn sprint(&mut self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => self.inet_sprint(v4),
            IpAddr::V6(v6) => self.inet6(v6, self.num_host),
        }
    }

    /// netstat.c `addr_do_one`: appends `address:port` (cut to fit 22 bytes
    /// unless `wide`), padded to 23 columns.
    pub fn push_endpoint(&mut self, out: &mut Vec<u8>, a: SocketAddr, proto: &'static str, wide: bool) {
        let host = match self.texts.get(&a.ip()) {
            Some(text) => text.clone(),
            None => {
                let text: Rc<str> = self.sprint(a.ip()).into();
                self.texts.insert(a.ip(), text.clone());
                text
            }
        };
        let port = match self.ports.get(&(a.port(), proto)) {
            Some(text) => text.clone(),
            None => {
                let text: Rc<str> = self.service(a.port(), proto).into();
                self.ports.insert((a.port(), proto), text.clone());
                text
            }
        };
        let start = out.len();
        addr::push_addr_port(out, host.as_bytes(), port.as_bytes(), 22, wide);
        let len = out.len() - start;
        out.resize(out.len() + 23usize.saturating_sub(len), b' ');
    }

    /// lib/inet.c `get_sname`: `*` for port 0, else the service name for
    /// `proto` (`tcp`, `udp` or `raw`) unless numeric.
    pub fn service(&mut self, port: u16, proto: &str) -> String {
        if port == 0 {
            return "*".into();
        }
        if !self.num_port {
            if let Some(name) = self.services().service(port, proto) {
                return name.to_owned();
            }
        }
        port.to_string()
    }

    fn services(&mut self) -> &Services {
        self.services.get_or_insert_with(Services::load)
    }

    /// netstat.c `finish_this_one`: the user name, or the uid.
    pub fn user(&mut self, uid: u32) -> String {
        if self.num_user {
            return uid.to_string();
        }
        self.users.entry(uid).or_insert_with(|| passwd_name(uid).unwrap_or_else(|| uid.to_string())).clone()
    }
}

/// Loopback and unspecified addresses are resolved too (`localhost`).
fn needs_lookup(ip: &IpAddr) -> bool {
    !ip.is_unspecified()
}

/// Runs one `getnameinfo` per address on its own thread and collects what
/// answers within [`LOOKUP_TIMEOUT`]; the rest are `None` (numeric).
fn lookup_all(ips: &[IpAddr]) -> Vec<(IpAddr, Option<String>)> {
    let (tx, rx) = mpsc::channel();
    let mut spawned = 0;
    for &ip in ips {
        let tx = tx.clone();
        // Detached: a lookup that outlives the deadline is simply ignored.
        if std::thread::Builder::new().name("nw-resolve".into()).spawn(move || tx.send((ip, reverse(ip)))).is_ok() {
            spawned += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    let mut found: HashMap<IpAddr, Option<String>> = ips.iter().map(|&ip| (ip, None)).collect();
    for _ in 0..spawned {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((ip, name)) => {
                found.insert(ip, name);
            }
            Err(_) => break,
        }
    }
    found.into_iter().collect()
}

/// `getnameinfo(NI_NAMEREQD)`: the name gethostbyaddr would give, or `None`.
fn reverse(ip: IpAddr) -> Option<String> {
    // SAFETY: sockaddr_storage is plain integers; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // Only the family and the address are set: port, flow and scope stay 0.
    let len = match ip {
        IpAddr::V4(ip) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(ip) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = ip.octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: valid sockaddr of `len` bytes and a host buffer of its stated size.
    let rc = unsafe {
        libc::getnameinfo(
            (&raw const storage).cast(),
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates on success.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `getpwuid(uid)->pw_name`, through the C library (nsswitch).
fn passwd_name(uid: u32) -> Option<String> {
    // SAFETY: passwd is integers and nullable pointers; all-zero is valid.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    loop {
        // SAFETY: all pointers are valid for the sizes given.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name points into `buf`, NUL-terminated.
        return Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned());
    }
}

//! ggml's RPC backend: serve this machine's devices to other processes, or pool remote devices
//! into this one (llama.cpp's `rpc-server` / `--rpc`, same wire protocol).
//!
//! ggml's RPC client has no error path: a connection that cannot be made, a handshake with the
//! wrong protocol version and a connection that breaks later all end in `GGML_ABORT`. So before
//! ggml ever connects, [`add_server`] checks the endpoint itself (syntax, a connect with a
//! timeout, and the protocol's own hello with a read timeout) and returns a typed error naming
//! it. A connection that breaks *after* that cannot be turned into an error return without
//! patching ggml; [`exit_on_rpc_failure`] lets a binary replace ggml's abort (SIGABRT plus a
//! debugger backtrace) with one line naming the endpoint and exit status 1.
//!
//! `ggml-rpc.h` is not among the bindings of llama-cpp-sys-2, and a build without `GGML_RPC`
//! has no RPC symbols, so the two entry points are looked up at run time through the RPC
//! registry's `get_proc_address`, as llama.cpp's own `--rpc` does: such a build still links and
//! reports [`RpcError::NotBuilt`].

use super::sys;
use std::ffi::{c_char, CStr, CString};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

/// `RPC_PROTO_{MAJOR,MINOR,PATCH}_VERSION` of the vendored `ggml-rpc.h`.
pub const PROTO_VERSION: (u8, u8, u8) = (7, 0, 0);
/// `RPC_CMD_HELLO` (ggml-rpc.cpp asserts it never changes).
const RPC_CMD_HELLO: u8 = 14;
/// `RPC_CONN_CAPS_SIZE` (transport.h): the hello carries this many capability bytes each way.
const CONN_CAPS_SIZE: usize = 24;
/// How long [`add_server`] waits for a TCP connection, and then for the hello's answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("RPC endpoint {given:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:50052)")]
    BadEndpoint { given: String, why: String },
    #[error("this build of ggml has no RPC backend (llama.cpp was configured without GGML_RPC=ON)")]
    NotBuilt,
    #[error("RPC server {endpoint}: cannot resolve the host to an IPv4 address ({why})")]
    Resolve { endpoint: Endpoint, why: String },
    #[error("RPC server {endpoint}: cannot connect ({why}); is `sail rpc-server` running there and the port reachable?")]
    Unreachable { endpoint: Endpoint, why: String },
    #[error("RPC server {endpoint}: connected, but no answer to the protocol hello within {secs} s (ggml's RPC server serves one client at a time: is another client using it? Or this is not an RPC server)")]
    NoAnswer { endpoint: Endpoint, secs: f32 },
    #[error("RPC server {endpoint}: speaks RPC protocol {}.{}.{}, this build speaks {}.{}.{}: run the same sail (ggml) version on both ends", .server.0, .server.1, .server.2, PROTO_VERSION.0, PROTO_VERSION.1, PROTO_VERSION.2)]
    Version { endpoint: Endpoint, server: (u8, u8, u8) },
    #[error("RPC server {endpoint}: {detail} during the protocol hello: not a ggml RPC server of protocol {}.x (this build speaks {}.{}.{})", PROTO_VERSION.0, PROTO_VERSION.0, PROTO_VERSION.1, PROTO_VERSION.2)]
    Handshake { endpoint: Endpoint, detail: String },
    #[error("RPC server {endpoint} reports no devices")]
    NoDevices { endpoint: Endpoint },
    #[error("cannot serve on {endpoint}: {why}")]
    Listen { endpoint: Endpoint, why: String },
    #[error("no ggml device named {name:?} to serve (this build sees: {available})")]
    NoDevice { name: String, available: String },
    #[error("ggml's RPC server on {endpoint} stopped (see the lines above)")]
    Stopped { endpoint: Endpoint },
}

/// A `HOST:PORT` where an RPC server listens. ggml's transport is IPv4 only and splits at the
/// first `:`, so IPv6 literals are refused here rather than misparsed there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for Endpoint {
    type Err = RpcError;

    fn from_str(s: &str) -> Result<Endpoint, RpcError> {
        let bad = |why: &str| RpcError::BadEndpoint { given: s.to_string(), why: why.to_string() };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains(':') || host.starts_with('[') {
            return Err(bad("IPv6 addresses are not supported by ggml's RPC transport; use an IPv4 address or a host name"));
        }
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(bad("the host may only contain letters, digits, '.', '-' and '_'"));
        }
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the port must be a number"));
        }
        match port.parse::<u32>() {
            Ok(p @ 1..=65535) => Ok(Endpoint { host: host.to_string(), port: p as u16 }),
            _ => Err(bad("the port must be in 1..=65535")),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// The first IPv4 address of the host, as ggml's `gethostbyname` picks it.
    fn resolve(&self) -> Result<SocketAddr, RpcError> {
        let err = |why: String| RpcError::Resolve { endpoint: self.clone(), why };
        let addrs = (self.host.as_str(), self.port).to_socket_addrs().map_err(|e| err(e.to_string()))?;
        addrs.into_iter().find(SocketAddr::is_ipv4).ok_or_else(|| err("no IPv4 address".into()))
    }
}

/// Parses a comma-separated `HOST:PORT[,HOST:PORT...]` list (no connection made).
pub fn parse_endpoints(list: &str) -> Result<Vec<Endpoint>, RpcError> {
    list.split(',').map(|s| s.trim().parse()).collect()
}

/// Connects to `ep` and exchanges the protocol's hello, with timeouts ([`CONNECT_TIMEOUT`],
/// [`HELLO_TIMEOUT`]); returns the server's protocol version if this build can talk to it.
pub fn probe(ep: &Endpoint) -> Result<(u8, u8, u8), RpcError> {
    probe_within(ep, CONNECT_TIMEOUT, HELLO_TIMEOUT)
}

fn probe_within(ep: &Endpoint, connect_timeout: Duration, hello_timeout: Duration) -> Result<(u8, u8, u8), RpcError> {
    let addr = ep.resolve()?;
    let stream = TcpStream::connect_timeout(&addr, connect_timeout).map_err(|e| RpcError::Unreachable {
        endpoint: ep.clone(),
        why: if e.kind() == std::io::ErrorKind::TimedOut {
            format!("no answer within {} s", connect_timeout.as_secs_f32())
        } else {
            e.to_string()
        },
    })?;
    let handshake = |detail: String| RpcError::Handshake { endpoint: ep.clone(), detail };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            RpcError::NoAnswer { endpoint: ep.clone(), secs: hello_timeout.as_secs_f32() }
        }
        std::io::ErrorKind::UnexpectedEof => handshake("the server closed the connection".into()),
        _ => handshake(format!("the connection failed ({e})")),
    };
    stream.set_read_timeout(Some(hello_timeout)).map_err(io)?;
    stream.set_write_timeout(Some(hello_timeout)).map_err(io)?;
    let _ = stream.set_nodelay(true);
    // request: | cmd (1 byte) | size (u64, host order) | conn_caps (all zero: plain TCP) |
    let mut req = vec![RPC_CMD_HELLO];
    req.extend_from_slice(&(CONN_CAPS_SIZE as u64).to_ne_bytes());
    req.extend_from_slice(&[0u8; CONN_CAPS_SIZE]);
    let mut s = &stream;
    s.write_all(&req).map_err(io)?;
    // response: | size (u64) | major | minor | patch | padding | conn_caps |
    let mut size = [0u8; 8];
    s.read_exact(&mut size).map_err(io)?;
    let size = u64::from_ne_bytes(size);
    let want = 4 + CONN_CAPS_SIZE as u64;
    if size != want {
        return Err(handshake(format!("a {size}-byte answer (protocol {}.x answers {want} bytes)", PROTO_VERSION.0)));
    }
    let mut rsp = [0u8; 4 + CONN_CAPS_SIZE];
    s.read_exact(&mut rsp).map_err(io)?;
    let server = (rsp[0], rsp[1], rsp[2]);
    // ggml-rpc.cpp's negotiate_hello: same major, server minor not newer than ours
    if server.0 != PROTO_VERSION.0 || server.1 > PROTO_VERSION.1 {
        return Err(RpcError::Version { endpoint: ep.clone(), server });
    }
    Ok(server)
}

/// The per-server registry function (`ggml_backend_rpc_add_server`).
type AddServerFn = unsafe extern "C" fn(endpoint: *const c_char) -> sys::ggml_backend_reg_t;
/// `ggml_backend_rpc_start_server(endpoint, cache_dir, n_threads, n_devices, devices)`.
type StartServerFn = unsafe extern "C" fn(
    endpoint: *const c_char,
    cache_dir: *const c_char,
    n_threads: usize,
    n_devices: usize,
    devices: *mut sys::ggml_backend_dev_t,
);

/// An entry point of the RPC registry, by name.
fn proc_address(name: &CStr) -> Result<*mut std::ffi::c_void, RpcError> {
    // SAFETY: registry lookup by a NUL-terminated name; NULL when not compiled in.
    let reg = unsafe { sys::ggml_backend_reg_by_name(c"RPC".as_ptr()) };
    if reg.is_null() {
        return Err(RpcError::NotBuilt);
    }
    // SAFETY: reg is the registered RPC backend; name is NUL-terminated.
    let p = unsafe { sys::ggml_backend_reg_get_proc_address(reg, name.as_ptr()) };
    if p.is_null() {
        return Err(RpcError::NotBuilt);
    }
    Ok(p)
}

/// Whether this build of ggml has the RPC backend.
pub fn available() -> bool {
    proc_address(c"ggml_backend_rpc_add_server").is_ok()
}

/// A server registered in this process.
#[derive(Debug, Clone)]
struct Server {
    endpoint: Endpoint,
    addr: SocketAddr,
    devices: Vec<String>,
}

static SERVERS: Mutex<Vec<Server>> = Mutex::new(Vec::new());

/// Registers the devices of the RPC server at `ep` with ggml (once per process; later calls
/// return the same names), after checking that it answers and speaks this protocol version.
/// The devices are then listed by [`crate::devices`] and usable by name (`RPC0`, `RPC1`, …,
/// numbered in registration order across servers).
pub fn add_server(ep: &Endpoint) -> Result<Vec<String>, RpcError> {
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = servers.iter().find(|s| &s.endpoint == ep) {
        return Ok(s.devices.clone());
    }
    let f = proc_address(c"ggml_backend_rpc_add_server")?;
    let addr = ep.resolve()?;
    probe(ep)?;
    // SAFETY: the RPC registry returned this entry point under this name; its signature is
    // `ggml_backend_reg_t ggml_backend_rpc_add_server(const char *)` (ggml-rpc.h).
    let add: AddServerFn = unsafe { std::mem::transmute::<*mut std::ffi::c_void, AddServerFn>(f) };
    let c = CString::new(ep.to_string()).expect("an endpoint has no NUL");
    // SAFETY: c is NUL-terminated; ggml copies the string. The server answered the hello just
    // now; if it vanishes in between, ggml aborts (see the module docs).
    let reg = unsafe { add(c.as_ptr()) };
    if reg.is_null() {
        return Err(RpcError::NoDevices { endpoint: ep.clone() });
    }
    // SAFETY: reg is a live registry for this server (ggml keeps it for the process); adding it
    // to ggml's registry makes its devices visible to ggml_backend_dev_* and llama.cpp.
    unsafe { sys::ggml_backend_register(reg) };
    // SAFETY: indices below the registry's own device count.
    let n = unsafe { sys::ggml_backend_reg_dev_count(reg) };
    let names: Vec<String> = (0..n)
        .map(|i| {
            // SAFETY: i < n; device names are owned by ggml for the process.
            let d = unsafe { sys::ggml_backend_reg_dev_get(reg, i) };
            // SAFETY: d is a device of reg; the name is NUL-terminated.
            unsafe { CStr::from_ptr(sys::ggml_backend_dev_name(d)) }.to_string_lossy().into_owned()
        })
        .collect();
    servers.push(Server { endpoint: ep.clone(), addr, devices: names.clone() });
    Ok(names)
}

/// The servers registered so far, in order, with their device names.
pub fn servers() -> Vec<(Endpoint, Vec<String>)> {
    SERVERS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| (s.endpoint.clone(), s.devices.clone())).collect()
}

/// TCP keepalive on ggml's connections: first probe after this much idle time, then every
/// [`KEEPALIVE_INTERVAL`], giving up after [`KEEPALIVE_PROBES`] unanswered ones.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEPALIVE_PROBES: u32 = 3;

/// Turns on TCP keepalive for this process's open connections to the registered servers
/// (Linux and Android: found through /proc/self/fd); returns how many it changed. ggml's
/// sockets have no timeouts: if a server's host vanishes (power, cable, Wi-Fi) while sail waits
/// for an answer, its `recv` would block forever. With keepalive the kernel notices within
/// about 5 + 3 × 2 = 11 s, `recv` fails, and ggml's client aborts as for a killed server. The
/// probes are answered by the server's kernel, so a server that is merely slow is not affected.
/// Call it after ggml made its long-lived connections (model weights and contexts hold them).
pub fn keep_connections_alive() -> usize {
    sockets::to_servers(&server_addrs()).into_iter().filter(|&fd| sockets::keepalive(fd)).count()
}

/// Bytes this process has sent to (acknowledged by) and received from the registered servers
/// over its currently open connections, from the kernel's TCP statistics; None where those
/// are not available (not Linux/Android, or no server registered).
pub fn traffic() -> Option<(u64, u64)> {
    let addrs = server_addrs();
    if addrs.is_empty() {
        return None;
    }
    sockets::to_servers(&addrs).into_iter().map(sockets::bytes).try_fold((0u64, 0u64), |acc, b| b.map(|(s, r)| (acc.0 + s, acc.1 + r)))
}

fn server_addrs() -> Vec<SocketAddr> {
    SERVERS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.addr).collect()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod sockets {
    use super::{KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::os::raw::c_int;

    /// The IPv4 peer of socket `fd`, if it is a connected IPv4 socket.
    fn peer(fd: c_int) -> Option<SocketAddr> {
        // SAFETY: a zeroed sockaddr_in is a valid value to be overwritten.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: sa and len are live locals of the sizes passed; a non-socket fd fails cleanly.
        let r = unsafe { libc::getpeername(fd, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) };
        if r != 0 || sa.sin_family != libc::AF_INET as libc::sa_family_t {
            return None;
        }
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))), u16::from_be(sa.sin_port)))
    }

    /// This process's sockets connected to one of `addrs`.
    pub(super) fn to_servers(addrs: &[SocketAddr]) -> Vec<c_int> {
        if addrs.is_empty() {
            return Vec::new();
        }
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
        dir.flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<c_int>().ok()))
            .filter(|&fd| peer(fd).is_some_and(|p| addrs.contains(&p)))
            .collect()
    }

    fn setopt(fd: c_int, level: c_int, name: c_int, value: c_int) -> bool {
        // SAFETY: passes a pointer to a live c_int and its size; fd is a socket (to_servers).
        unsafe { libc::setsockopt(fd, level, name, (&value as *const c_int).cast(), std::mem::size_of::<c_int>() as libc::socklen_t) == 0 }
    }

    pub(super) fn keepalive(fd: c_int) -> bool {
        setopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)
            && setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE.as_secs() as c_int)
            && setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, KEEPALIVE_INTERVAL.as_secs() as c_int)
            && setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES as c_int)
    }

    /// (bytes acknowledged by the peer, bytes received) of a TCP socket.
    #[cfg(target_os = "linux")]
    pub(super) fn bytes(fd: c_int) -> Option<(u64, u64)> {
        // SAFETY: a zeroed tcp_info is a valid value to be overwritten.
        let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: ti and len are live locals of the sizes passed; the kernel fills at most len bytes.
        let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut ti as *mut libc::tcp_info).cast(), &mut len) };
        (r == 0).then_some((ti.tcpi_bytes_acked, ti.tcpi_bytes_received))
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn bytes(_: c_int) -> Option<(u64, u64)> {
        None
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sockets {
    pub(super) fn to_servers(_: &[std::net::SocketAddr]) -> Vec<i32> {
        Vec::new()
    }
    pub(super) fn keepalive(_: i32) -> bool {
        false
    }
    pub(super) fn bytes(_: i32) -> Option<(u64, u64)> {
        None
    }
}

/// What [`serve`] serves.
#[derive(Debug, Clone)]
pub struct ServeParams {
    /// Must be an IPv4 address (ggml's server binds with `inet_addr`).
    pub endpoint: Endpoint,
    /// ggml device names (`CPU`, `Vulkan0`, …); each is offered to clients as one remote device.
    pub devices: Vec<String>,
    pub n_threads: usize,
    /// Where the server keeps large weights by hash, so a client's reload can skip sending them.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Runs ggml's RPC server in this thread. It never returns while it serves; it returns an
/// error when it cannot start or stops. Clients are served one at a time.
pub fn serve(p: &ServeParams) -> Result<std::convert::Infallible, RpcError> {
    let listen = |why: String| RpcError::Listen { endpoint: p.endpoint.clone(), why };
    if p.endpoint.host.parse::<Ipv4Addr>().is_err() {
        return Err(listen("the host must be an IPv4 address such as 127.0.0.1 (ggml's RPC server does not resolve names)".into()));
    }
    let f = proc_address(c"ggml_backend_rpc_start_server")?;
    let mut devs: Vec<sys::ggml_backend_dev_t> = Vec::new();
    for name in &p.devices {
        let c = CString::new(name.as_str()).map_err(|_| listen("device name contains NUL".into()))?;
        // SAFETY: registry lookup by a NUL-terminated name.
        let d = unsafe { sys::ggml_backend_dev_by_name(c.as_ptr()) };
        if d.is_null() {
            let available = crate::devices().iter().map(|d| d.name.clone()).collect::<Vec<_>>().join(", ");
            return Err(RpcError::NoDevice { name: name.clone(), available });
        }
        devs.push(d);
    }
    if devs.is_empty() {
        return Err(RpcError::NoDevice { name: String::new(), available: "none given".into() });
    }
    // ggml only prints "Failed to create server socket" when the port is taken: check first so
    // the error says why (a race with another process is still possible).
    std::net::TcpListener::bind((p.endpoint.host.as_str(), p.endpoint.port)).map_err(|e| listen(e.to_string()))?;
    let ep = CString::new(p.endpoint.to_string()).expect("an endpoint has no NUL");
    let cache = match &p.cache_dir {
        Some(d) => Some(CString::new(d.as_os_str().as_encoded_bytes()).map_err(|_| listen("cache folder path contains NUL".into()))?),
        None => None,
    };
    // SAFETY: the RPC registry returned this entry point under this name, with the signature of
    // ggml-rpc.h's ggml_backend_rpc_start_server.
    let start: StartServerFn = unsafe { std::mem::transmute::<*mut std::ffi::c_void, StartServerFn>(f) };
    // SAFETY: NUL-terminated strings and a device array of devs.len() registered devices, all
    // alive for the call (which only returns when the server stops).
    unsafe {
        start(ep.as_ptr(), cache.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), p.n_threads.max(1), devs.len(), devs.as_mut_ptr());
    }
    Err(RpcError::Stopped { endpoint: p.endpoint.clone() })
}

static ABORT_PREFIX: Mutex<String> = Mutex::new(String::new());

/// For binaries: when ggml aborts inside its RPC client (a server died or closed the
/// connection after registration), print `{prefix}lost the RPC server HOST:PORT …` and end the
/// process with `_exit(1)` instead of SIGABRT and a debugger backtrace. Any other ggml abort
/// still aborts, after printing ggml's message. Libraries must not call this: it ends the host
/// process (which ggml's abort would do anyway).
pub fn exit_on_rpc_failure(prefix: &str) {
    *ABORT_PREFIX.lock().unwrap_or_else(|e| e.into_inner()) = prefix.to_string();
    // SAFETY: installs a callback with static lifetime; ggml calls it from the aborting thread
    // right before abort().
    unsafe { sys::ggml_set_abort_callback(Some(on_ggml_abort)) };
}

/// Writes to fd 2 without Rust's stderr lock (the aborting thread may be any thread).
fn write_stderr(s: &str) {
    let b = s.as_bytes();
    // SAFETY: writes b.len() bytes from a live slice to the process's stderr descriptor.
    let _ = unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
}

/// Which of the registered servers is gone: ggml's message does not say, so each is probed
/// again (after a moment, so that a process being killed has closed its listening socket too).
/// A dead server refuses the connection or resets it; a live one answers the hello, or, while
/// it serves our other connection, takes it into its backlog without answering.
fn lost_server_message(detail: &str) -> String {
    let servers = match SERVERS.try_lock() {
        Ok(s) => s.iter().map(|s| s.endpoint.clone()).collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    std::thread::sleep(Duration::from_millis(100));
    let quick = Duration::from_secs(1);
    let down: Vec<String> = std::thread::scope(|s| {
        let probes: Vec<_> = servers
            .iter()
            .map(|e| {
                s.spawn(move || matches!(probe_within(e, quick, quick), Err(RpcError::Unreachable { .. } | RpcError::Handshake { .. })))
            })
            .collect();
        servers.iter().zip(probes).filter_map(|(e, p)| p.join().unwrap_or(true).then(|| e.to_string())).collect()
    });
    let all = servers.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    let what = match (down.as_slice(), all.as_slice()) {
        ([one], _) => format!("lost the RPC server {one} (it no longer accepts connections)"),
        ([], [one]) => format!("lost the RPC server {one} (it closed our connection but is still running: see its log)"),
        ([], []) => "lost an RPC server".to_string(),
        ([], many) => format!("lost the connection to one of the RPC servers {} (all still running: see their logs)", many.join(", ")),
        (many, _) => format!("lost the RPC servers {}", many.join(", ")),
    };
    format!("{what}; ggml's RPC client cannot continue after a broken connection [{detail}]")
}

unsafe extern "C" fn on_ggml_abort(msg: *const c_char) {
    let m = if msg.is_null() {
        String::new()
    } else {
        // SAFETY: ggml passes a NUL-terminated message buffer valid for the call.
        unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
    };
    let prefix = ABORT_PREFIX.try_lock().map(|p| p.clone()).unwrap_or_default();
    if !m.contains("ggml-rpc") {
        write_stderr(&format!("{prefix}ggml aborted: {m}\n"));
        return; // ggml calls abort()
    }
    let detail = m.rsplit(": ").next().unwrap_or(&m).trim().to_string();
    write_stderr(&format!("{prefix}{}\n", lost_server_message(&detail)));
    // SAFETY: ends the process at once, without running atexit handlers or destructors that
    // other threads (still inside ggml) could be using; C stdio was flushed by ggml_abort.
    unsafe { libc::_exit(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_refuse() {
        let e: Endpoint = "127.0.0.1:50052".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 50052));
        assert_eq!(e.to_string(), "127.0.0.1:50052");
        assert_eq!("board.local:1".parse::<Endpoint>().unwrap().host, "board.local");
        for (bad, why) in [
            ("127.0.0.1", "no port"),
            (":50052", "no host"),
            ("host:", "number"),
            ("host:0", "1..=65535"),
            ("host:65536", "1..=65535"),
            ("host:99999999999", "1..=65535"),
            ("host:-1", "number"),
            ("host:5x", "number"),
            ("[::1]:50052", "IPv6"),
            ("::1:50052", "IPv6"),
            ("a b:1", "letters"),
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(parse_endpoints("a:1, b:2").unwrap().len(), 2);
        assert!(parse_endpoints("a:1,,b:2").is_err());
    }

    #[test]
    fn unused_port_is_refused_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = std::time::Instant::now();
        let e = probe(&Endpoint { host: "127.0.0.1".into(), port }).unwrap_err();
        assert!(matches!(e, RpcError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    /// A fake server answering the hello with `answer` (or closing at once when None).
    fn fake_server(answer: Option<Vec<u8>>) -> Endpoint {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut req = [0u8; 1 + 8 + CONN_CAPS_SIZE];
                let _ = s.read_exact(&mut req);
                if let Some(a) = answer {
                    let _ = s.write_all(&a);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        Endpoint { host: "127.0.0.1".into(), port }
    }

    fn hello(v: (u8, u8, u8)) -> Vec<u8> {
        let mut a = ((4 + CONN_CAPS_SIZE) as u64).to_ne_bytes().to_vec();
        a.extend([v.0, v.1, v.2, 0]);
        a.extend([0u8; CONN_CAPS_SIZE]);
        a
    }

    #[test]
    fn hello_versions() {
        assert_eq!(probe(&fake_server(Some(hello((7, 0, 3))))).unwrap(), (7, 0, 3));
        for v in [(6, 0, 0), (8, 0, 0), (7, 1, 0)] {
            let ep = fake_server(Some(hello(v)));
            let e = probe(&ep).unwrap_err();
            let s = e.to_string();
            assert!(
                matches!(e, RpcError::Version { .. }) && s.contains(&ep.to_string()) && s.contains(&format!("{}.{}.{}", v.0, v.1, v.2)),
                "{s}"
            );
        }
        let ep = fake_server(None);
        let e = probe(&ep).unwrap_err();
        assert!(matches!(e, RpcError::Handshake { .. }) && e.to_string().contains(&ep.to_string()), "{e}");
        let ep = fake_server(Some(vec![1, 0, 0, 0, 0, 0, 0, 0, 9]));
        assert!(matches!(probe(&ep).unwrap_err(), RpcError::Handshake { .. }));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn keepalive_and_traffic_on_connections_to_registered_servers_only() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let ours = TcpStream::connect(addr).unwrap();
        let (theirs, _) = l.accept().unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let unrelated = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        SERVERS.lock().unwrap().push(Server { endpoint: Endpoint { host: "127.0.0.1".into(), port: addr.port() }, addr, devices: vec![] });
        assert!(keep_connections_alive() >= 1);
        let get = |s: &TcpStream, level, name| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: a live socket and a c_int-sized out buffer.
            let r = unsafe { libc::getsockopt(s.as_raw_fd(), level, name, (&mut v as *mut libc::c_int).cast(), &mut len) };
            assert_eq!(r, 0);
            v
        };
        assert_eq!(get(&ours, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(&ours, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), KEEPALIVE_IDLE.as_secs() as libc::c_int);
        assert_eq!(get(&ours, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), KEEPALIVE_PROBES as libc::c_int);
        assert_eq!(get(&theirs, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0, "the server side's peer is not a registered server");
        assert_eq!(get(&unrelated, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        // traffic counts what went over the registered connection only
        let (s0, r0) = traffic().unwrap();
        (&ours).write_all(&[7u8; 1000]).unwrap();
        let mut buf = [0u8; 1000];
        (&theirs).read_exact(&mut buf).unwrap();
        (&theirs).write_all(&[1u8; 300]).unwrap();
        (&ours).read_exact(&mut buf[..300]).unwrap();
        (&unrelated).write_all(&[0u8; 5000]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let (s1, r1) = traffic().unwrap();
        assert_eq!((s1 - s0, r1 - r0), (1000, 300));
        SERVERS.lock().unwrap().clear();
        assert!(traffic().is_none());
    }

    #[test]
    fn a_listener_that_never_answers_times_out() {
        // the kernel completes the connection into the backlog; nobody accepts it
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = Endpoint { host: "127.0.0.1".into(), port: l.local_addr().unwrap().port() };
        let t = std::time::Instant::now();
        let e = probe_within(&ep, Duration::from_secs(1), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, RpcError::NoAnswer { .. }) && e.to_string().contains(&ep.to_string()), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        drop(l);
    }
}

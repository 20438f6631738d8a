//! `reg serve`: check the registry opens, bind, say where, serve.

use anyhow::Result;
use reg_registry::Config;
use reg_serve::{AllowedHost, ServeOptions, Server};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Serve the registry `config` names on `bind:port` until Ctrl-C,
/// answering requests addressed to `allow_hosts` besides the loopback
/// names and the bound address. The first line on stdout is
/// `reg serve: http://ADDR:PORT/ ...` (the real port when 0 was asked for).
pub fn run(config: Config, bind: IpAddr, port: u16, allow_hosts: Vec<AllowedHost>, quiet: bool) -> Result<()> {
    if !bind.is_loopback() {
        eprintln!(
            "reg: warning: serving on {bind}: anyone who can reach this address can read every model in the registry and download its files"
        );
    }
    let root = config.root.clone();
    let options = ServeOptions {
        allow_hosts,
        ..ServeOptions::default()
    };
    let server = Server::bind(SocketAddr::new(bind, port), config, options)?;
    if !quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "reg serve: http://{}/ (registry {}; Ctrl-C stops)",
            server.local_addr(),
            root.display()
        )?;
        out.flush()?;
    }
    server.run()?;
    Ok(())
}

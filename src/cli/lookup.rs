//! `clusterns lookup`: one question answered from the configured feed, printed dig style.

use std::path::PathBuf;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::Builder;

/// Answers one question from the configured feed and prints the response, dig style; with
/// `dnssec` the query has DO set (and EDNS), so a signed zone answers with signatures.
pub(crate) fn lookup(
    config_path: PathBuf,
    name: &str,
    qtype: &str,
    dnssec: bool,
) -> Result<(), String> {
    use std::str::FromStr;
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let qname = domain::base::Name::<Vec<u8>>::from_str(name)
        .map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
    let rtype = domain::base::iana::Rtype::from_str(qtype)
        .map_err(|_| format!("{qtype:?} is not a record type"))?;
    let mut msg = domain::base::MessageBuilder::new_vec().question();
    msg.header_mut().set_id(1);
    msg.push((&qname, rtype))
        .map_err(|e| format!("building the query: {e}"))?;
    let query = if dnssec {
        let mut add = msg.additional();
        add.opt(|opt| {
            opt.set_udp_payload_size(1232);
            opt.set_dnssec_ok(true);
            Ok(())
        })
        .map_err(|e| format!("building the query: {e}"))?;
        add.finish()
    } else {
        msg.finish()
    };
    let builder = Builder::load(config).map_err(|e| format!("loading the feed: {e}"))?;
    let snap = builder.shared().load_full();
    let mut out = vec![0u8; 65535];
    let handled =
        clusterns::query::respond(&snap, &query, &mut out, clusterns::query::Transport::Tcp);
    let response = domain::base::Message::from_slice(&out[..handled.len])
        .map_err(|e| format!("response: {e}"))?;
    print!("{}", clusterns::wire::present::dig_style(response));
    Ok(())
}

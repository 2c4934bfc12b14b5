//! `ringbroker-powercut BACKING MOUNTPOINT`: mounts the power-cut filesystem and reads
//! commands on stdin, one a line:
//!
//! - `pending`: bytes written and namespace operations not durable yet;
//! - `cut [keep=BYTES] [align=BYTES] [suffix=NAME-END] [size=survives]`: cuts the power (see the library
//!   docs); with `keep`, the last pending write (to a file ending with `suffix`) keeps that
//!   many bytes, rounded down to `align`;
//! - `fail writes=ERRNO` / `fail syncs=ERRNO` (`ENOSPC`, `EIO`, `EDQUOT` or a number;
//!   `off` to stop): makes writes (and allocating `fallocate`s) or file syncs fail;
//! - `quit` (or end of input): unmounts and exits.

use std::io::BufRead;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, backing, mountpoint] = args.as_slice() else {
        eprintln!("usage: ringbroker-powercut BACKING MOUNTPOINT");
        std::process::exit(2);
    };
    let m = ringbroker_powercut::mount(&PathBuf::from(backing), &PathBuf::from(mountpoint))?;
    println!("mounted {backing} at {mountpoint}");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("pending") => println!("{:?}", m.pending()),
            Some("cut") => {
                let mut tear = ringbroker_powercut::Tear {
                    suffix: None,
                    keep: 0,
                    align: 1,
                    size_survives: false,
                };
                let mut torn = false;
                for w in words {
                    match w.split_once('=') {
                        Some(("keep", v)) => {
                            tear.keep = v.parse().unwrap_or(0);
                            torn = true;
                        }
                        Some(("align", v)) => tear.align = v.parse().unwrap_or(1),
                        Some(("suffix", v)) => tear.suffix = Some(v.to_string()),
                        Some(("size", "survives")) => tear.size_survives = true,
                        _ => eprintln!("ignored: {w}"),
                    }
                }
                println!("{:?}", m.cut(torn.then_some(&tear)));
            }
            Some("fail") => {
                for w in words {
                    let Some((what, v)) = w.split_once('=') else {
                        eprintln!("ignored: {w}");
                        continue;
                    };
                    let errno = match v {
                        "off" => None,
                        "ENOSPC" => Some(libc::ENOSPC),
                        "EIO" => Some(libc::EIO),
                        "EDQUOT" => Some(libc::EDQUOT),
                        n => n.parse().ok(),
                    };
                    match what {
                        "writes" => m.fail_writes(errno),
                        "syncs" => m.fail_syncs(errno),
                        _ => eprintln!("ignored: {w}"),
                    }
                }
                println!("ok");
            }
            Some("quit") => break,
            _ => eprintln!(
                "commands: pending | cut [keep=N] [align=N] [suffix=S] | \
                 fail writes=E|off syncs=E|off | quit"
            ),
        }
    }
    m.unmount()
}

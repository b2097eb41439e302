use clap::{Parser, Subcommand};

/// prism: hybrid parallel computing and reproducible ray-traced rendering.
#[derive(Parser)]
#[command(name = "prism", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print process sets, ranks, nodes and threads.
    Info,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!("threads per rank: {threads}");
        }
    }
}

fn main() -> std::process::ExitCode {
    hukou_sync::cli::run()
}

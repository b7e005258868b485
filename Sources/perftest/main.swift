import ArgumentParser

var command = PerfTest.parseAsRootLikeGo()
do {
    try command.run()
} catch {
    PerfTest.exit(withError: error)
}

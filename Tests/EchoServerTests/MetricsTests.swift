import StrandsCLI
import StrandsTestSupport
import StrandsWS
import Testing

@Suite("Prometheus text format")
struct PrometheusTextTests {
    @Test("HELP and TYPE once per family, labels escaped, samples in order")
    func format() {
        var text = PrometheusText()
        text.add("a_total", .counter, help: "Counts \\ things\nacross lines.", value: 3)
        text.add("b", .gauge, help: "By cause.", value: 1, labels: [("cause", "say \"hi\"\\\n")])
        text.add("b", .gauge, help: "By cause.", value: 2, labels: [("cause", "x"), ("loop", "0")])
        #expect(text.text == """
            # HELP a_total Counts \\\\ things\\nacross lines.
            # TYPE a_total counter
            a_total 3
            # HELP b By cause.
            # TYPE b gauge
            b{cause="say \\"hi\\"\\\\\\n"} 1
            b{cause="x",loop="0"} 2

            """)
    }

    @Test("metric and label names follow the format's grammar")
    func names() {
        #expect(PrometheusText.isValidName("strands_messages_sent_total", colons: true))
        #expect(PrometheusText.isValidName("job:rate5m", colons: true))
        #expect(!PrometheusText.isValidName("job:rate5m", colons: false))
        #expect(!PrometheusText.isValidName("9lives", colons: true))
        #expect(!PrometheusText.isValidName("", colons: true))
        #expect(!PrometheusText.isValidName("with-dash", colons: true))
    }
}

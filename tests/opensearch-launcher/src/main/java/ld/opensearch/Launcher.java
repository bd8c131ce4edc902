package ld.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one single-node OpenSearch server in this JVM, for tests.
 *
 * <p>Usage: {@code Launcher -Ekey=value ...}. {@code path.home} is required; every other
 * setting has a test-friendly default that an {@code -E} argument overrides (for example
 * {@code -Ehttp.port=9200}, {@code -Ethread_pool.write.queue_size=1}). When the node
 * answers HTTP it prints {@code READY http://HOST:PORT} on stdout; SIGTERM closes it
 * cleanly (flushes and releases the data directory) and exits. With
 * {@code -Dld.opensearch.exitOnStdinEof=true} it also exits (cleanly) when its stdin closes,
 * so that a test process that dies does not leave the server behind.
 */
public final class Launcher {

    /** The node with the modules a distribution would load from {@code modules/}. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, List<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private static final String LOG4J_CONFIG = String.join("\n",
            "status = error",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
            "rootLogger.level = info",
            "rootLogger.appenderRef.console.ref = console",
            "");

    public static void main(String[] args) throws Exception {
        // Logging is shut down by this class after the node has closed, not by Log4j's own hook.
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");
        Settings.Builder given = Settings.builder();
        for (String arg : args) {
            if (!arg.startsWith("-E") || arg.indexOf('=') < 0) {
                System.err.println("usage: Launcher -Ekey=value ... (got " + arg + ")");
                System.exit(64);
            }
            int eq = arg.indexOf('=');
            given.put(arg.substring(2, eq), arg.substring(eq + 1));
        }
        Settings provided = given.build();
        if (provided.get("path.home") == null) {
            System.err.println("usage: Launcher -Epath.home=DIR [-Ekey=value ...]");
            System.exit(64);
        }
        Path home = Path.of(provided.get("path.home"));
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("plugins"));

        Settings settings = Settings.builder()
                .put("cluster.name", "ld-test")
                .put("node.name", "ld-test-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", "0")
                .put("transport.port", "0")
                .put("discovery.type", "single-node")
                // Test machines often have fuller disks than the default 85/90/95 % watermarks allow.
                .put("cluster.routing.allocation.disk.threshold_enabled", "false")
                // A small heap under bulk load must not trip the real-memory breaker by chance.
                .put("indices.breaker.total.use_real_memory", "false")
                .put("action.auto_create_index", "true")
                .put(provided)
                .build();

        // Logs go to stdout (the harness keeps them in a file), at INFO, like a distribution's
        // console appender; `-Elogger.org.opensearch.xyz=debug` changes a logger's level.
        Files.writeString(home.resolve("config").resolve("log4j2.properties"), LOG4J_CONFIG);
        LogConfigurator.registerErrorListener();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings, Collections.emptyMap(), home.resolve("config"), () -> settings.get("node.name"));
        LogConfigurator.setNodeName(settings.get("node.name"));
        LogConfigurator.configure(environment);
        Node node = new EmbeddedNode(environment, List.of(Netty4Plugin.class, CommonAnalysisPlugin.class));

        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    System.err.println("node did not close within 30 s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                System.out.println("STOPPED");
                System.out.flush();
                closed.countDown();
                Configurator.shutdown((LoggerContext) LogManager.getContext(false));
            }
        }, "ld-opensearch-shutdown"));

        if (Boolean.getBoolean("ld.opensearch.exitOnStdinEof")) {
            // The parent (a test process) holds our stdin: when it goes away, so do we.
            var stdin = System.in;
            Thread watch = new Thread(() -> {
                try {
                    while (stdin.read() >= 0) {
                        // ignore input
                    }
                } catch (Exception e) {
                    // closed either way
                }
                System.exit(0);
            }, "ld-opensearch-stdin-watch");
            watch.setDaemon(true);
            watch.start();
        }

        node.start();
        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        System.out.println("READY http://" + http.getAddress() + ":" + http.getPort());
        System.out.flush();
        closed.await();
    }
}

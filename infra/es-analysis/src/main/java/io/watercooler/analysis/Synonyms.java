package io.watercooler.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.synonym.SolrSynonymParser;
import org.apache.lucene.analysis.synonym.SynonymFilter;
import org.apache.lucene.analysis.synonym.SynonymGraphFilter;
import org.apache.lucene.analysis.synonym.SynonymMap;
import org.apache.lucene.analysis.synonym.WordnetSynonymParser;
import org.apache.lucene.util.CharsRef;
import org.apache.lucene.util.CharsRefBuilder;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexService;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalysisMode;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.CustomAnalyzer;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;

import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.text.ParseException;
import java.util.List;
import java.util.function.Function;

/**
 * The {@code synonym} and {@code synonym_graph} filters. As in the full distribution, the rules are
 * analysed by the chain that precedes the filter in its analyzer (so "Café" in a rule matches what
 * a lowercase + asciifolding chain made of the text), which is why the filter is built per
 * analyzer ({@link #getChainAwareTokenFilterFactory}). Parameters: {@code synonyms} or
 * {@code synonyms_path}, {@code format} (solr, wordnet), {@code expand}, {@code lenient},
 * {@code updateable} (search-time only). {@code synonyms_set} (the synonyms API) needs the full
 * distribution's synonyms service and is refused.
 */
final class Synonyms extends AbstractTokenFilterFactory {
    private final boolean graph;
    private final Environment env;
    private final Settings params;
    private final boolean expand;
    private final boolean lenient;
    private final String format;
    private final AnalysisMode mode;

    Synonyms(Environment env, String name, Settings params, boolean graph) {
        super(name, params);
        this.graph = graph;
        this.env = env;
        this.params = params;
        this.expand = params.getAsBoolean("expand", true);
        this.lenient = params.getAsBoolean("lenient", false);
        this.format = params.get("format", "");
        this.mode = params.getAsBoolean("updateable", false) ? AnalysisMode.SEARCH_TIME : AnalysisMode.ALL;
        if (params.get("synonyms_set") != null) {
            throw new IllegalArgumentException("[synonyms_set] needs the full distribution's synonyms API; use [synonyms] or [synonyms_path]");
        }
        if (params.getAsList("synonyms", null) == null && params.get("synonyms_path") == null) {
            throw new IllegalArgumentException("synonym requires either `synonyms`, `synonyms_set` or `synonyms_path` to be configured");
        }
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        throw new IllegalStateException("Call getChainAwareTokenFilterFactory to specialize this factory for an analysis chain first");
    }

    @Override
    public AnalysisMode getAnalysisMode() {
        return mode;
    }

    @Override
    public TokenFilterFactory getChainAwareTokenFilterFactory(
        IndexService.IndexCreationContext context,
        TokenizerFactory tokenizer,
        List<CharFilterFactory> charFilters,
        List<TokenFilterFactory> previousTokenFilters,
        Function<String, TokenFilterFactory> allFilters
    ) {
        // Earlier synonym filters in the chain stand aside while the rules are analysed (their getSynonymFilter).
        Analyzer analyzer = new CustomAnalyzer(
            tokenizer,
            charFilters.toArray(new CharFilterFactory[0]),
            previousTokenFilters.stream().map(TokenFilterFactory::getSynonymFilter).toArray(TokenFilterFactory[]::new)
        );
        SynonymMap synonyms;
        try (Reader rules = rules()) {
            SynonymMap.Parser parser = "wordnet".equalsIgnoreCase(format)
                ? new LenientWordnet(expand, lenient, analyzer)
                : new LenientSolr(expand, lenient, analyzer);
            parser.parse(rules);
            synonyms = parser.build();
        } catch (IOException | ParseException | RuntimeException e) {
            throw new IllegalArgumentException("failed to build synonyms", e);
        }
        String name = name();
        AnalysisMode analysisMode = mode;
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream stream) {
                if (synonyms.fst == null) {
                    return stream;
                }
                return graph ? new SynonymGraphFilter(stream, synonyms, false) : new SynonymFilter(stream, synonyms, false);
            }

            @Override
            public TokenFilterFactory getSynonymFilter() {
                // A synonym map cannot be analysed by a chain that stacks synonyms itself.
                return IDENTITY_FILTER;
            }

            @Override
            public AnalysisMode getAnalysisMode() {
                return analysisMode;
            }
        };
    }

    private Reader rules() {
        List<String> inline = params.getAsList("synonyms", null);
        if (inline != null) {
            return new StringReader(String.join("\n", inline));
        }
        return Analysis.getReaderFromFile(env, params.get("synonyms_path"), "synonyms_path");
    }

    /** With {@code lenient}, a rule whose words the chain cannot analyse is skipped instead of failing the index. */
    private static final class LenientSolr extends SolrSynonymParser {
        private final boolean lenient;

        LenientSolr(boolean expand, boolean lenient, Analyzer analyzer) {
            super(true, expand, analyzer);
            this.lenient = lenient;
        }

        @Override
        public CharsRef analyze(String text, CharsRefBuilder reuse) throws IOException {
            return Synonyms.analyze(this::superAnalyze, text, reuse, lenient);
        }

        private CharsRef superAnalyze(String text, CharsRefBuilder reuse) throws IOException {
            return super.analyze(text, reuse);
        }

        @Override
        public void add(CharsRef input, CharsRef output, boolean includeOrig) {
            if (!lenient || (input.length > 0 && output.length > 0)) {
                super.add(input, output, includeOrig);
            }
        }
    }

    private static final class LenientWordnet extends WordnetSynonymParser {
        private final boolean lenient;

        LenientWordnet(boolean expand, boolean lenient, Analyzer analyzer) {
            super(true, expand, analyzer);
            this.lenient = lenient;
        }

        @Override
        public CharsRef analyze(String text, CharsRefBuilder reuse) throws IOException {
            return Synonyms.analyze(this::superAnalyze, text, reuse, lenient);
        }

        private CharsRef superAnalyze(String text, CharsRefBuilder reuse) throws IOException {
            return super.analyze(text, reuse);
        }

        @Override
        public void add(CharsRef input, CharsRef output, boolean includeOrig) {
            if (!lenient || (input.length > 0 && output.length > 0)) {
                super.add(input, output, includeOrig);
            }
        }
    }

    @FunctionalInterface
    private interface Analyze {
        CharsRef apply(String text, CharsRefBuilder reuse) throws IOException;
    }

    private static CharsRef analyze(Analyze analyze, String text, CharsRefBuilder reuse, boolean lenient) throws IOException {
        try {
            return analyze.apply(text, reuse);
        } catch (IllegalArgumentException e) {
            if (!lenient) {
                throw e;
            }
            reuse.clear();
            return reuse.get();
        }
    }
}

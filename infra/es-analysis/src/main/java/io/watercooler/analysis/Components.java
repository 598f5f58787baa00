package io.watercooler.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractCharFilterFactory;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.AbstractTokenizerFactory;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.NormalizingCharFilterFactory;
import org.elasticsearch.index.analysis.NormalizingTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;

import java.io.IOException;
import java.io.Reader;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * Small adapters from a component's parameters to the factories Elasticsearch's analysis registry
 * wants, so each registration in {@link WatercoolerAnalysisPlugin} is one line: read the
 * parameters (with Elasticsearch's own parsers in {@link Analysis} where it has them), return what
 * wraps a token stream.
 */
final class Components {
    private Components() {}

    /** Reads a component's parameters; returns what it applies. Parameter errors throw IllegalArgumentException. */
    @FunctionalInterface
    interface Configure<T> {
        T from(IndexSettings index, Environment env, Settings params) throws IOException;
    }

    /** A token filter that is not applied to query terms of wildcard/prefix/fuzzy queries (stemmers, n-grams). */
    static AnalysisProvider<TokenFilterFactory> filter(Configure<UnaryOperator<TokenStream>> configure) {
        return (index, env, name, params) -> {
            UnaryOperator<TokenStream> wrap = configure.from(index, env, params);
            return new AbstractTokenFilterFactory(name, params) {
                @Override
                public TokenStream create(TokenStream stream) {
                    return wrap.apply(stream);
                }
            };
        };
    }

    /** A parameterless token filter. */
    static AnalysisProvider<TokenFilterFactory> filter(UnaryOperator<TokenStream> wrap) {
        return filter((index, env, params) -> wrap);
    }

    /**
     * A token filter that also applies to the terms of multi-term queries and may sit in a
     * normalizer (folding, lower-casing, normalisation), as the full distribution's do.
     */
    static AnalysisProvider<TokenFilterFactory> normalizing(Configure<UnaryOperator<TokenStream>> configure) {
        return normalizing(configure, null);
    }

    static AnalysisProvider<TokenFilterFactory> normalizing(UnaryOperator<TokenStream> wrap) {
        return normalizing((index, env, params) -> wrap, null);
    }

    /** As above, with a different filter for normalisation (asciifolding never keeps the original there). */
    static AnalysisProvider<TokenFilterFactory> normalizing(
        Configure<UnaryOperator<TokenStream>> configure,
        UnaryOperator<TokenStream> forNormalizer
    ) {
        return (index, env, name, params) -> {
            UnaryOperator<TokenStream> wrap = configure.from(index, env, params);
            UnaryOperator<TokenStream> normalize = forNormalizer == null ? wrap : forNormalizer;
            return new NormalizingFilter(name, params, wrap, normalize);
        };
    }

    private static final class NormalizingFilter extends AbstractTokenFilterFactory implements NormalizingTokenFilterFactory {
        private final UnaryOperator<TokenStream> wrap;
        private final UnaryOperator<TokenStream> normalize;

        NormalizingFilter(String name, Settings params, UnaryOperator<TokenStream> wrap, UnaryOperator<TokenStream> normalize) {
            super(name, params);
            this.wrap = wrap;
            this.normalize = normalize;
        }

        @Override
        public TokenStream create(TokenStream stream) {
            return wrap.apply(stream);
        }

        @Override
        public TokenStream normalize(TokenStream stream) {
            return normalize.apply(stream);
        }
    }

    static AnalysisProvider<TokenizerFactory> tokenizer(Configure<Supplier<Tokenizer>> configure) {
        return (index, env, name, params) -> {
            Supplier<Tokenizer> make = configure.from(index, env, params);
            return new AbstractTokenizerFactory(index, params, name) {
                @Override
                public Tokenizer create() {
                    return make.get();
                }
            };
        };
    }

    static AnalysisProvider<CharFilterFactory> charFilter(Configure<UnaryOperator<Reader>> configure, boolean normalizing) {
        return (index, env, name, params) -> {
            UnaryOperator<Reader> wrap = configure.from(index, env, params);
            if (normalizing) {
                return new NormalizingCharFilter(name, wrap);
            }
            return new AbstractCharFilterFactory(name) {
                @Override
                public Reader create(Reader reader) {
                    return wrap.apply(reader);
                }
            };
        };
    }

    private static final class NormalizingCharFilter extends AbstractCharFilterFactory implements NormalizingCharFilterFactory {
        private final UnaryOperator<Reader> wrap;

        NormalizingCharFilter(String name, UnaryOperator<Reader> wrap) {
            super(name);
            this.wrap = wrap;
        }

        @Override
        public Reader create(Reader reader) {
            return wrap.apply(reader);
        }
    }

    /**
     * A language analyzer with the parameters the full distribution's take: {@code stopwords}
     * (a list or a named set such as {@code _spanish_} or {@code _none_}), {@code stopwords_path}
     * and {@code stem_exclusion}.
     */
    static AnalysisProvider<AnalyzerProvider<? extends Analyzer>> analyzer(
        Supplier<CharArraySet> defaultStopWords,
        BiFunction<CharArraySet, CharArraySet, Analyzer> make
    ) {
        return (index, env, name, params) -> {
            CharArraySet stopWords = Analysis.parseStopWords(env, params, defaultStopWords.get());
            CharArraySet stemExclusion = Analysis.parseStemExclusion(params, CharArraySet.EMPTY_SET);
            Analyzer analyzer = make.apply(stopWords, stemExclusion);
            return provider(name, params, analyzer);
        };
    }

    /** A language analyzer that has no stem exclusion (cjk, greek, persian, thai). */
    static AnalysisProvider<AnalyzerProvider<? extends Analyzer>> stopWordsOnlyAnalyzer(
        Supplier<CharArraySet> defaultStopWords,
        Function<CharArraySet, Analyzer> make
    ) {
        return (index, env, name, params) -> provider(name, params, make.apply(Analysis.parseStopWords(env, params, defaultStopWords.get())));
    }

    static AnalyzerProvider<Analyzer> provider(String name, Settings params, Analyzer analyzer) {
        return new AbstractIndexAnalyzerProvider<>(name, params) {
            @Override
            public Analyzer get() {
                return analyzer;
            }
        };
    }

    static List<String> list(Settings params, String key) {
        return params.getAsList(key, List.of());
    }
}

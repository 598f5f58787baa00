package io.watercooler.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ar.ArabicAnalyzer;
import org.apache.lucene.analysis.ar.ArabicNormalizationFilter;
import org.apache.lucene.analysis.bg.BulgarianAnalyzer;
import org.apache.lucene.analysis.bn.BengaliAnalyzer;
import org.apache.lucene.analysis.bn.BengaliNormalizationFilter;
import org.apache.lucene.analysis.br.BrazilianAnalyzer;
import org.apache.lucene.analysis.ca.CatalanAnalyzer;
import org.apache.lucene.analysis.cjk.CJKAnalyzer;
import org.apache.lucene.analysis.cjk.CJKBigramFilter;
import org.apache.lucene.analysis.cjk.CJKWidthFilter;
import org.apache.lucene.analysis.ckb.SoraniAnalyzer;
import org.apache.lucene.analysis.ckb.SoraniNormalizationFilter;
import org.apache.lucene.analysis.classic.ClassicFilter;
import org.apache.lucene.analysis.commongrams.CommonGramsFilter;
import org.apache.lucene.analysis.commongrams.CommonGramsQueryFilter;
import org.apache.lucene.analysis.compound.CompoundWordTokenFilterBase;
import org.apache.lucene.analysis.compound.DictionaryCompoundWordTokenFilter;
import org.apache.lucene.analysis.core.KeywordAnalyzer;
import org.apache.lucene.analysis.core.SimpleAnalyzer;
import org.apache.lucene.analysis.core.StopAnalyzer;
import org.apache.lucene.analysis.core.TypeTokenFilter;
import org.apache.lucene.analysis.core.WhitespaceAnalyzer;
import org.apache.lucene.analysis.miscellaneous.KeepWordFilter;
import org.apache.lucene.analysis.miscellaneous.LimitTokenCountFilter;
import org.apache.lucene.analysis.miscellaneous.StemmerOverrideFilter;
import org.apache.lucene.analysis.path.PathHierarchyTokenizer;
import org.apache.lucene.analysis.path.ReversePathHierarchyTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.pattern.PatternReplaceFilter;
import org.apache.lucene.analysis.pattern.SimplePatternSplitTokenizer;
import org.apache.lucene.analysis.pattern.SimplePatternTokenizer;
import org.apache.lucene.analysis.classic.ClassicTokenizer;
import org.apache.lucene.analysis.core.DecimalDigitFilter;
import org.apache.lucene.analysis.core.FlattenGraphFilter;
import org.apache.lucene.analysis.core.KeywordTokenizer;
import org.apache.lucene.analysis.core.LetterTokenizer;
import org.apache.lucene.analysis.core.UpperCaseFilter;
import org.apache.lucene.analysis.core.WhitespaceTokenizer;
import org.apache.lucene.analysis.cz.CzechAnalyzer;
import org.apache.lucene.analysis.da.DanishAnalyzer;
import org.apache.lucene.analysis.de.GermanAnalyzer;
import org.apache.lucene.analysis.de.GermanNormalizationFilter;
import org.apache.lucene.analysis.el.GreekAnalyzer;
import org.apache.lucene.analysis.el.GreekLowerCaseFilter;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.es.SpanishAnalyzer;
import org.apache.lucene.analysis.et.EstonianAnalyzer;
import org.apache.lucene.analysis.eu.BasqueAnalyzer;
import org.apache.lucene.analysis.fa.PersianAnalyzer;
import org.apache.lucene.analysis.fa.PersianNormalizationFilter;
import org.apache.lucene.analysis.fi.FinnishAnalyzer;
import org.apache.lucene.analysis.fr.FrenchAnalyzer;
import org.apache.lucene.analysis.ga.IrishAnalyzer;
import org.apache.lucene.analysis.ga.IrishLowerCaseFilter;
import org.apache.lucene.analysis.gl.GalicianAnalyzer;
import org.apache.lucene.analysis.hi.HindiAnalyzer;
import org.apache.lucene.analysis.hi.HindiNormalizationFilter;
import org.apache.lucene.analysis.hu.HungarianAnalyzer;
import org.apache.lucene.analysis.hy.ArmenianAnalyzer;
import org.apache.lucene.analysis.id.IndonesianAnalyzer;
import org.apache.lucene.analysis.in.IndicNormalizationFilter;
import org.apache.lucene.analysis.it.ItalianAnalyzer;
import org.apache.lucene.analysis.lt.LithuanianAnalyzer;
import org.apache.lucene.analysis.lv.LatvianAnalyzer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.KeywordRepeatFilter;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.miscellaneous.PatternKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.miscellaneous.ScandinavianFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.ScandinavianNormalizationFilter;
import org.apache.lucene.analysis.miscellaneous.SetKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.TrimFilter;
import org.apache.lucene.analysis.miscellaneous.TruncateTokenFilter;
import org.apache.lucene.analysis.miscellaneous.WordDelimiterGraphFilter;
import org.apache.lucene.analysis.miscellaneous.WordDelimiterIterator;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenizer;
import org.apache.lucene.analysis.ngram.NGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenizer;
import org.apache.lucene.analysis.nl.DutchAnalyzer;
import org.apache.lucene.analysis.no.NorwegianAnalyzer;
import org.apache.lucene.analysis.pattern.PatternReplaceCharFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.analysis.pt.PortugueseAnalyzer;
import org.apache.lucene.analysis.reverse.ReverseStringFilter;
import org.apache.lucene.analysis.ro.RomanianAnalyzer;
import org.apache.lucene.analysis.ru.RussianAnalyzer;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.apache.lucene.analysis.sr.SerbianNormalizationFilter;
import org.apache.lucene.analysis.sv.SwedishAnalyzer;
import org.apache.lucene.analysis.th.ThaiAnalyzer;
import org.apache.lucene.analysis.th.ThaiTokenizer;
import org.apache.lucene.analysis.tr.TurkishAnalyzer;
import org.apache.lucene.analysis.tr.TurkishLowerCaseFilter;
import org.apache.lucene.analysis.charfilter.HTMLStripCharFilter;
import org.apache.lucene.analysis.charfilter.MappingCharFilter;
import org.apache.lucene.analysis.util.ElisionFilter;
import org.elasticsearch.common.regex.Regex;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

import static io.watercooler.analysis.Components.analyzer;
import static io.watercooler.analysis.Components.charFilter;
import static io.watercooler.analysis.Components.filter;
import static io.watercooler.analysis.Components.list;
import static io.watercooler.analysis.Components.normalizing;
import static io.watercooler.analysis.Components.stopWordsOnlyAnalyzer;
import static io.watercooler.analysis.Components.tokenizer;

/**
 * Lucene's analysis components, registered under the names (and with the parameters) of the full
 * Elasticsearch distribution's analysis-common module, so that index settings written for a
 * production cluster work unchanged on the local integ-test-zip. The names the server itself
 * registers ({@code standard}, {@code stop}, {@code shingle}, {@code hunspell}, the {@code lowercase}
 * pre-configured filter and normalizer, the {@code standard}/{@code simple}/{@code whitespace}/
 * {@code keyword}/{@code stop}/{@code classic} analyzers) are left to it: registering one twice
 * would stop the node.
 */
public class WatercoolerAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> f = new TreeMap<>();
        f.put("asciifolding", normalizing((index, env, p) -> {
            boolean preserveOriginal = p.getAsBoolean("preserve_original", false);
            return s -> new ASCIIFoldingFilter(s, preserveOriginal);
        }, s -> new ASCIIFoldingFilter(s, false)));
        f.put("lowercase", normalizing((index, env, p) -> lowerCase(p.get("language"))));
        f.put("uppercase", normalizing(UpperCaseFilter::new));
        f.put("elision", AnalysisPlugin.requiresAnalysisSettings(normalizing((index, env, p) -> {
            CharArraySet articles = Analysis.parseArticles(env, p);
            if (articles == null) {
                throw new IllegalArgumentException("elision filter requires [articles] or [articles_path] setting");
            }
            return s -> new ElisionFilter(s, articles);
        })));
        f.put("cjk_bigram", filter((index, env, p) -> {
            int flags = CJKBigramFilter.HAN | CJKBigramFilter.HIRAGANA | CJKBigramFilter.KATAKANA | CJKBigramFilter.HANGUL;
            for (String script : list(p, "ignored_scripts")) {
                flags &= ~switch (script.toLowerCase(Locale.ROOT)) {
                    case "han" -> CJKBigramFilter.HAN;
                    case "hiragana" -> CJKBigramFilter.HIRAGANA;
                    case "katakana" -> CJKBigramFilter.KATAKANA;
                    case "hangul" -> CJKBigramFilter.HANGUL;
                    default -> throw new IllegalArgumentException("unknown script [" + script + "] in [ignored_scripts]");
                };
            }
            int scripts = flags;
            boolean outputUnigrams = p.getAsBoolean("output_unigrams", false);
            return s -> new CJKBigramFilter(s, scripts, outputUnigrams);
        }));
        f.put("cjk_width", normalizing(CJKWidthFilter::new));
        f.put("stemmer", filter((index, env, p) -> Stemmers.stemmer(p.get("language", p.get("name", "porter")))));
        f.put("snowball", filter((index, env, p) -> Stemmers.snowball(p.get("language", p.get("name", "English")))));
        f.put("porter_stem", filter(PorterStemFilter::new));
        f.put("kstem", filter(KStemFilter::new));
        f.put("keyword_marker", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> keywordMarker(env, p))));
        f.put("keyword_repeat", filter(KeywordRepeatFilter::new));
        f.put("remove_duplicates", filter(RemoveDuplicatesTokenFilter::new));
        f.put("word_delimiter_graph", filter((index, env, p) -> wordDelimiterGraph(env, p)));
        f.put("flatten_graph", filter(FlattenGraphFilter::new));
        f.put("arabic_normalization", normalizing(ArabicNormalizationFilter::new));
        f.put("bengali_normalization", normalizing(BengaliNormalizationFilter::new));
        f.put("german_normalization", normalizing(GermanNormalizationFilter::new));
        f.put("hindi_normalization", normalizing(HindiNormalizationFilter::new));
        f.put("indic_normalization", normalizing(IndicNormalizationFilter::new));
        f.put("persian_normalization", normalizing(PersianNormalizationFilter::new));
        f.put("scandinavian_folding", normalizing(ScandinavianFoldingFilter::new));
        f.put("scandinavian_normalization", normalizing(ScandinavianNormalizationFilter::new));
        f.put("serbian_normalization", normalizing(SerbianNormalizationFilter::new));
        f.put("sorani_normalization", normalizing(SoraniNormalizationFilter::new));
        f.put("decimal_digit", normalizing(DecimalDigitFilter::new));
        f.put("apostrophe", filter(org.apache.lucene.analysis.tr.ApostropheFilter::new));
        f.put("classic", filter(ClassicFilter::new));
        f.put("trim", normalizing(TrimFilter::new));
        f.put("reverse", filter(ReverseStringFilter::new));
        f.put("truncate", filter((index, env, p) -> {
            int length = p.getAsInt("length", 10);
            if (length <= 0) {
                throw new IllegalArgumentException("length parameter must be provided");
            }
            return s -> new TruncateTokenFilter(s, length);
        }));
        f.put("length", filter((index, env, p) -> {
            int min = p.getAsInt("min", 0);
            int max = p.getAsInt("max", Integer.MAX_VALUE);
            return s -> new LengthFilter(s, min, max);
        }));
        f.put("edge_ngram", filter((index, env, p) -> {
            int min = p.getAsInt("min_gram", 1);
            int max = p.getAsInt("max_gram", 2);
            boolean preserveOriginal = p.getAsBoolean("preserve_original", false);
            boolean back = "back".equalsIgnoreCase(p.get("side", "front"));
            if (back) {
                return s -> new ReverseStringFilter(new EdgeNGramTokenFilter(new ReverseStringFilter(s), min, max, preserveOriginal));
            }
            return s -> new EdgeNGramTokenFilter(s, min, max, preserveOriginal);
        }));
        f.put("ngram", filter((index, env, p) -> {
            int min = p.getAsInt("min_gram", 1);
            int max = p.getAsInt("max_gram", 2);
            checkNgramDiff(index.getMaxNgramDiff(), min, max, "NGram Tokenizer");
            boolean preserveOriginal = p.getAsBoolean("preserve_original", false);
            return s -> new NGramTokenFilter(s, min, max, preserveOriginal);
        }));
        f.put("limit", filter((index, env, p) -> {
            int max = p.getAsInt("max_token_count", 1);
            boolean consumeAll = p.getAsBoolean("consume_all_tokens", false);
            return s -> new LimitTokenCountFilter(s, max, consumeAll);
        }));
        f.put("unique", filter((index, env, p) -> {
            boolean samePosition = p.getAsBoolean("only_on_same_position", false);
            return s -> new More.UniqueFilter(s, samePosition);
        }));
        f.put("keep", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            if (Analysis.getWordList(env, p, "keep_words") == null) {
                throw new IllegalArgumentException("keep requires either `keep_words` or `keep_words_path` to be configured");
            }
            CharArraySet words = Analysis.getWordSet(env, p, "keep_words");
            return s -> new KeepWordFilter(s, words);
        })));
        f.put("keep_types", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            Set<String> types = new HashSet<>(list(p, "types"));
            if (types.isEmpty()) {
                throw new IllegalArgumentException("keep_types requires `types` to be configured");
            }
            String mode = p.get("mode", "include");
            if (!mode.equals("include") && !mode.equals("exclude")) {
                throw new IllegalArgumentException("`keep_types` tokenfilter mode can only be [include] or [exclude] but was [" + mode + "].");
            }
            return s -> new TypeTokenFilter(s, types, mode.equals("include"));
        })));
        f.put("stemmer_override", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            List<String> rules = Analysis.getWordList(env, p, "rules");
            if (rules == null) {
                throw new IllegalArgumentException("stemmer override filter requires either `rules` or `rules_path` to be configured");
            }
            var overrides = More.stemmerOverrides(rules);
            return s -> new StemmerOverrideFilter(s, overrides);
        })));
        f.put("pattern_replace", AnalysisPlugin.requiresAnalysisSettings(normalizing((index, env, p) -> {
            String regex = p.get("pattern");
            if (regex == null) {
                throw new IllegalArgumentException("pattern is missing for [pattern_replace] token filter");
            }
            Pattern pattern = Regex.compile(regex, p.get("flags"));
            String replacement = p.get("replacement", "");
            boolean all = p.getAsBoolean("all", true);
            return s -> new PatternReplaceFilter(s, pattern, replacement, all);
        })));
        f.put("pattern_capture", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            List<String> regexes = list(p, "patterns");
            if (regexes.isEmpty()) {
                throw new IllegalArgumentException("required setting 'patterns' is missing for token filter [pattern_capture]");
            }
            Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
            boolean preserveOriginal = p.getAsBoolean("preserve_original", true);
            return s -> new PatternCaptureGroupTokenFilter(s, preserveOriginal, patterns);
        })));
        f.put("common_grams", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            boolean ignoreCase = p.getAsBoolean("ignore_case", false);
            CharArraySet words = Analysis.parseCommonWords(env, p, null, ignoreCase);
            if (words == null) {
                throw new IllegalArgumentException("missing or empty [common_words] or [common_words_path] configuration for common_grams token filter");
            }
            boolean queryMode = p.getAsBoolean("query_mode", false);
            return s -> {
                CommonGramsFilter grams = new CommonGramsFilter(s, words);
                return queryMode ? new CommonGramsQueryFilter(grams) : grams;
            };
        })));
        f.put("dictionary_decompounder", AnalysisPlugin.requiresAnalysisSettings(filter((index, env, p) -> {
            if (Analysis.getWordList(env, p, "word_list") == null) {
                throw new IllegalArgumentException("word_list must be provided for [" + "dictionary_decompounder" + "], either as a path to a file, or directly");
            }
            CharArraySet words = Analysis.getWordSet(env, p, "word_list");
            int minWord = p.getAsInt("min_word_size", CompoundWordTokenFilterBase.DEFAULT_MIN_WORD_SIZE);
            int minSubword = p.getAsInt("min_subword_size", CompoundWordTokenFilterBase.DEFAULT_MIN_SUBWORD_SIZE);
            int maxSubword = p.getAsInt("max_subword_size", CompoundWordTokenFilterBase.DEFAULT_MAX_SUBWORD_SIZE);
            boolean onlyLongest = p.getAsBoolean("only_longest_match", false);
            return s -> new DictionaryCompoundWordTokenFilter(s, words, minWord, minSubword, maxSubword, onlyLongest);
        })));
        f.put("synonym", AnalysisPlugin.requiresAnalysisSettings((index, env, name, p) -> new Synonyms(env, name, p, false)));
        f.put("synonym_graph", AnalysisPlugin.requiresAnalysisSettings((index, env, name, p) -> new Synonyms(env, name, p, true)));
        return f;
    }

    /** The names usable without settings where the registered filter requires them (as the full distribution does). */
    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        return List.of(PreConfiguredTokenFilter.singleton("elision", true, s -> new ElisionFilter(s, FrenchAnalyzer.DEFAULT_ARTICLES)));
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        Map<String, AnalysisProvider<TokenizerFactory>> t = new TreeMap<>();
        t.put("whitespace", tokenizer((index, env, p) -> {
            int max = p.getAsInt("max_token_length", 255);
            return () -> new WhitespaceTokenizer(TokenStream.DEFAULT_TOKEN_ATTRIBUTE_FACTORY, max);
        }));
        t.put("keyword", tokenizer((index, env, p) -> {
            int bufferSize = p.getAsInt("buffer_size", 256);
            return () -> new KeywordTokenizer(bufferSize);
        }));
        t.put("letter", tokenizer((index, env, p) -> LetterTokenizer::new));
        t.put("classic", tokenizer((index, env, p) -> {
            int max = p.getAsInt("max_token_length", 255);
            return () -> {
                ClassicTokenizer tokenizer = new ClassicTokenizer();
                tokenizer.setMaxTokenLength(max);
                return tokenizer;
            };
        }));
        t.put("uax_url_email", tokenizer((index, env, p) -> {
            int max = p.getAsInt("max_token_length", 255);
            return () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(max);
                return tokenizer;
            };
        }));
        t.put("thai", tokenizer((index, env, p) -> ThaiTokenizer::new));
        t.put("pattern", tokenizer((index, env, p) -> {
            Pattern pattern = Regex.compile(p.get("pattern", "\\W+"), p.get("flags"));
            int group = p.getAsInt("group", -1);
            return () -> new PatternTokenizer(pattern, group);
        }));
        t.put("ngram", tokenizer((index, env, p) -> {
            int min = p.getAsInt("min_gram", 1);
            int max = p.getAsInt("max_gram", 2);
            checkNgramDiff(index.getMaxNgramDiff(), min, max, "NGram Tokenizer");
            TokenChars chars = TokenChars.parse(p);
            return () -> new NGramTokenizer(min, max) {
                @Override
                protected boolean isTokenChar(int chr) {
                    return chars.matches(chr);
                }
            };
        }));
        t.put("edge_ngram", tokenizer((index, env, p) -> {
            int min = p.getAsInt("min_gram", 1);
            int max = p.getAsInt("max_gram", 2);
            TokenChars chars = TokenChars.parse(p);
            return () -> new EdgeNGramTokenizer(min, max) {
                @Override
                protected boolean isTokenChar(int chr) {
                    return chars.matches(chr);
                }
            };
        }));
        t.put("path_hierarchy", tokenizer((index, env, p) -> {
            char delimiter = oneChar(p.get("delimiter", "/"), "delimiter");
            char replacement = oneChar(p.get("replacement", String.valueOf(delimiter)), "replacement");
            int bufferSize = p.getAsInt("buffer_size", 1024);
            int skip = p.getAsInt("skip", 0);
            boolean reverse = p.getAsBoolean("reverse", false);
            return () -> reverse
                ? new ReversePathHierarchyTokenizer(bufferSize, delimiter, replacement, skip)
                : new PathHierarchyTokenizer(bufferSize, delimiter, replacement, skip);
        }));
        t.put("char_group", tokenizer((index, env, p) -> {
            List<String> chars = list(p, "tokenize_on_chars");  // none: the whole text is one token
            int max = p.getAsInt("max_token_length", 255);
            More.charGroup(chars, max); // parameters checked once, here
            return () -> More.charGroup(chars, max);
        }));
        t.put("simple_pattern", tokenizer((index, env, p) -> {
            String pattern = p.get("pattern", "");
            return () -> new SimplePatternTokenizer(pattern);
        }));
        t.put("simple_pattern_split", tokenizer((index, env, p) -> {
            String pattern = p.get("pattern", "");
            return () -> new SimplePatternSplitTokenizer(pattern);
        }));
        return t;
    }

    private static char oneChar(String value, String parameter) {
        if (value.length() != 1) {
            throw new IllegalArgumentException("[" + parameter + "] must be a single character, got [" + value + "]");
        }
        return value.charAt(0);
    }

    @Override
    public Map<String, AnalysisProvider<CharFilterFactory>> getCharFilters() {
        Map<String, AnalysisProvider<CharFilterFactory>> c = new TreeMap<>();
        c.put("html_strip", charFilter((index, env, p) -> {
            Set<String> escapedTags = new HashSet<>(list(p, "escaped_tags"));
            return r -> new HTMLStripCharFilter(r, escapedTags.isEmpty() ? null : escapedTags);
        }, false));
        c.put("pattern_replace", AnalysisPlugin.requiresAnalysisSettings(charFilter((index, env, p) -> {
            String regex = p.get("pattern");
            if (regex == null) {
                throw new IllegalArgumentException("pattern is missing for [pattern_replace] char filter");
            }
            Pattern pattern = Regex.compile(regex, p.get("flags"));
            String replacement = p.get("replacement", "");
            return r -> new PatternReplaceCharFilter(pattern, replacement, r);
        }, true)));
        c.put("mapping", AnalysisPlugin.requiresAnalysisSettings(charFilter((index, env, p) -> {
            List<String> rules = Analysis.getWordList(env, p, "mappings");
            if (rules == null) {
                throw new IllegalArgumentException("mapping requires either `mappings` or `mappings_path` to be configured");
            }
            var map = Mappings.parse(rules);
            return r -> new MappingCharFilter(map, r);
        }, true)));
        return c;
    }

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> a = new TreeMap<>();
        a.put("keyword", (index, env, name, p) -> Components.provider(name, p, new KeywordAnalyzer()));
        a.put("simple", (index, env, name, p) -> Components.provider(name, p, new SimpleAnalyzer()));
        a.put("whitespace", (index, env, name, p) -> Components.provider(name, p, new WhitespaceAnalyzer()));
        a.put("stop", stopWordsOnlyAnalyzer(() -> EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, StopAnalyzer::new));
        a.put("pattern", (index, env, name, p) -> Components.provider(name, p, More.patternAnalyzer(
            Regex.compile(p.get("pattern", "\\W+"), p.get("flags")),
            p.getAsBoolean("lowercase", true),
            Analysis.parseStopWords(env, p, CharArraySet.EMPTY_SET))));
        a.put("fingerprint", (index, env, name, p) -> Components.provider(name, p, More.fingerprintAnalyzer(
            oneChar(p.get("separator", " "), "separator"),
            p.getAsInt("max_output_size", 255),
            Analysis.parseStopWords(env, p, CharArraySet.EMPTY_SET))));
        a.put("arabic", analyzer(ArabicAnalyzer::getDefaultStopSet, ArabicAnalyzer::new));
        a.put("armenian", analyzer(ArmenianAnalyzer::getDefaultStopSet, ArmenianAnalyzer::new));
        a.put("basque", analyzer(BasqueAnalyzer::getDefaultStopSet, BasqueAnalyzer::new));
        a.put("bengali", analyzer(BengaliAnalyzer::getDefaultStopSet, BengaliAnalyzer::new));
        a.put("brazilian", analyzer(BrazilianAnalyzer::getDefaultStopSet, BrazilianAnalyzer::new));
        a.put("bulgarian", analyzer(BulgarianAnalyzer::getDefaultStopSet, BulgarianAnalyzer::new));
        a.put("catalan", analyzer(CatalanAnalyzer::getDefaultStopSet, CatalanAnalyzer::new));
        a.put("cjk", stopWordsOnlyAnalyzer(CJKAnalyzer::getDefaultStopSet, CJKAnalyzer::new));
        a.put("czech", analyzer(CzechAnalyzer::getDefaultStopSet, CzechAnalyzer::new));
        a.put("danish", analyzer(DanishAnalyzer::getDefaultStopSet, DanishAnalyzer::new));
        a.put("dutch", analyzer(DutchAnalyzer::getDefaultStopSet, (stop, exclusion) -> new DutchAnalyzer(stop, exclusion)));
        a.put("english", analyzer(EnglishAnalyzer::getDefaultStopSet, EnglishAnalyzer::new));
        a.put("estonian", analyzer(EstonianAnalyzer::getDefaultStopSet, EstonianAnalyzer::new));
        a.put("finnish", analyzer(FinnishAnalyzer::getDefaultStopSet, FinnishAnalyzer::new));
        a.put("french", analyzer(FrenchAnalyzer::getDefaultStopSet, FrenchAnalyzer::new));
        a.put("galician", analyzer(GalicianAnalyzer::getDefaultStopSet, GalicianAnalyzer::new));
        a.put("german", analyzer(GermanAnalyzer::getDefaultStopSet, GermanAnalyzer::new));
        a.put("greek", stopWordsOnlyAnalyzer(GreekAnalyzer::getDefaultStopSet, GreekAnalyzer::new));
        a.put("hindi", analyzer(HindiAnalyzer::getDefaultStopSet, HindiAnalyzer::new));
        a.put("hungarian", analyzer(HungarianAnalyzer::getDefaultStopSet, HungarianAnalyzer::new));
        a.put("indonesian", analyzer(IndonesianAnalyzer::getDefaultStopSet, IndonesianAnalyzer::new));
        a.put("irish", analyzer(IrishAnalyzer::getDefaultStopSet, IrishAnalyzer::new));
        a.put("italian", analyzer(ItalianAnalyzer::getDefaultStopSet, ItalianAnalyzer::new));
        a.put("latvian", analyzer(LatvianAnalyzer::getDefaultStopSet, LatvianAnalyzer::new));
        a.put("lithuanian", analyzer(LithuanianAnalyzer::getDefaultStopSet, LithuanianAnalyzer::new));
        a.put("norwegian", analyzer(NorwegianAnalyzer::getDefaultStopSet, NorwegianAnalyzer::new));
        a.put("persian", stopWordsOnlyAnalyzer(PersianAnalyzer::getDefaultStopSet, PersianAnalyzer::new));
        a.put("portuguese", analyzer(PortugueseAnalyzer::getDefaultStopSet, PortugueseAnalyzer::new));
        a.put("romanian", analyzer(RomanianAnalyzer::getDefaultStopSet, RomanianAnalyzer::new));
        a.put("russian", analyzer(RussianAnalyzer::getDefaultStopSet, RussianAnalyzer::new));
        a.put("sorani", analyzer(SoraniAnalyzer::getDefaultStopSet, SoraniAnalyzer::new));
        a.put("spanish", analyzer(SpanishAnalyzer::getDefaultStopSet, SpanishAnalyzer::new));
        a.put("swedish", analyzer(SwedishAnalyzer::getDefaultStopSet, SwedishAnalyzer::new));
        a.put("thai", stopWordsOnlyAnalyzer(ThaiAnalyzer::getDefaultStopSet, ThaiAnalyzer::new));
        a.put("turkish", analyzer(TurkishAnalyzer::getDefaultStopSet, TurkishAnalyzer::new));
        return a;
    }

    private static UnaryOperator<TokenStream> lowerCase(String language) {
        if (language == null) {
            return LowerCaseFilter::new;
        }
        return switch (language.toLowerCase(Locale.ROOT)) {
            case "greek" -> GreekLowerCaseFilter::new;
            case "irish" -> IrishLowerCaseFilter::new;
            case "turkish" -> TurkishLowerCaseFilter::new;
            default -> throw new IllegalArgumentException("language [" + language + "] not support for lower case");
        };
    }

    private static UnaryOperator<TokenStream> keywordMarker(org.elasticsearch.env.Environment env, org.elasticsearch.common.settings.Settings p) {
        boolean ignoreCase = p.getAsBoolean("ignore_case", false);
        String pattern = p.get("keywords_pattern");
        List<String> keywords = Analysis.getWordList(env, p, "keywords");
        if (pattern != null && keywords != null) {
            throw new IllegalArgumentException("cannot specify both `keywords_pattern` and `keywords` or `keywords_path`");
        }
        if (pattern != null) {
            Pattern compiled = Pattern.compile(pattern);
            return s -> new PatternKeywordMarkerFilter(s, compiled);
        }
        if (keywords == null) {
            throw new IllegalArgumentException("keyword filter requires either `keywords`, `keywords_path`, or `keywords_pattern` to be configured");
        }
        CharArraySet set = new CharArraySet(keywords, ignoreCase);
        return s -> new SetKeywordMarkerFilter(s, set);
    }

    private static UnaryOperator<TokenStream> wordDelimiterGraph(org.elasticsearch.env.Environment env, org.elasticsearch.common.settings.Settings p) {
        if (p.get("type_table") != null || p.get("type_table_path") != null) {
            throw new IllegalArgumentException("[type_table] of word_delimiter_graph is not supported by the local analysis plugin");
        }
        int flags = 0;
        flags |= p.getAsBoolean("generate_word_parts", true) ? WordDelimiterGraphFilter.GENERATE_WORD_PARTS : 0;
        flags |= p.getAsBoolean("generate_number_parts", true) ? WordDelimiterGraphFilter.GENERATE_NUMBER_PARTS : 0;
        flags |= p.getAsBoolean("catenate_words", false) ? WordDelimiterGraphFilter.CATENATE_WORDS : 0;
        flags |= p.getAsBoolean("catenate_numbers", false) ? WordDelimiterGraphFilter.CATENATE_NUMBERS : 0;
        flags |= p.getAsBoolean("catenate_all", false) ? WordDelimiterGraphFilter.CATENATE_ALL : 0;
        flags |= p.getAsBoolean("split_on_case_change", true) ? WordDelimiterGraphFilter.SPLIT_ON_CASE_CHANGE : 0;
        flags |= p.getAsBoolean("preserve_original", false) ? WordDelimiterGraphFilter.PRESERVE_ORIGINAL : 0;
        flags |= p.getAsBoolean("split_on_numerics", true) ? WordDelimiterGraphFilter.SPLIT_ON_NUMERICS : 0;
        flags |= p.getAsBoolean("stem_english_possessive", true) ? WordDelimiterGraphFilter.STEM_ENGLISH_POSSESSIVE : 0;
        flags |= p.getAsBoolean("ignore_keywords", false) ? WordDelimiterGraphFilter.IGNORE_KEYWORDS : 0;
        boolean adjustOffsets = p.getAsBoolean("adjust_offsets", true);
        CharArraySet protectedWords = Analysis.getWordSet(env, p, "protected_words");
        int configuration = flags;
        return s -> new WordDelimiterGraphFilter(s, adjustOffsets, WordDelimiterIterator.DEFAULT_WORD_DELIM_TABLE, configuration, protectedWords);
    }

    private static void checkNgramDiff(int maxAllowed, int min, int max, String what) {
        if (max - min > maxAllowed) {
            throw new IllegalArgumentException(
                "The difference between max_gram and min_gram in " + what + " must be less than or equal to: ["
                    + maxAllowed + "] but was [" + (max - min) + "]. This limit can be set by changing the [index.max_ngram_diff] index level setting."
            );
        }
    }
}

package io.watercooler.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.StopFilter;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.FingerprintFilter;
import org.apache.lucene.analysis.miscellaneous.StemmerOverrideFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.analysis.standard.StandardTokenizer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;
import org.apache.lucene.analysis.util.CharTokenizer;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.IntPredicate;
import java.util.regex.Pattern;

/** The components whose behaviour the full distribution defines itself rather than in a Lucene class. */
final class More {
    private More() {}

    /** The {@code pattern} analyzer: split on a regex, lower-case (by default), drop stop words (none by default). */
    static Analyzer patternAnalyzer(Pattern pattern, boolean lowercase, CharArraySet stopWords) {
        return new Analyzer() {
            @Override
            protected TokenStreamComponents createComponents(String field) {
                Tokenizer tokenizer = new PatternTokenizer(pattern, -1);
                TokenStream stream = lowercase ? new LowerCaseFilter(tokenizer) : tokenizer;
                return new TokenStreamComponents(tokenizer, new StopFilter(stream, stopWords));
            }

            @Override
            protected TokenStream normalize(String field, TokenStream in) {
                return lowercase ? new LowerCaseFilter(in) : in;
            }
        };
    }

    /** The {@code fingerprint} analyzer: standard tokens lower-cased, folded, stop words dropped, sorted and deduplicated into one. */
    static Analyzer fingerprintAnalyzer(char separator, int maxOutputSize, CharArraySet stopWords) {
        return new Analyzer() {
            @Override
            protected TokenStreamComponents createComponents(String field) {
                Tokenizer tokenizer = new StandardTokenizer();
                TokenStream stream = new StopFilter(new ASCIIFoldingFilter(new LowerCaseFilter(tokenizer), false), stopWords);
                return new TokenStreamComponents(tokenizer, new FingerprintFilter(stream, maxOutputSize, separator));
            }

            @Override
            protected TokenStream normalize(String field, TokenStream in) {
                return new ASCIIFoldingFilter(new LowerCaseFilter(in), false);
            }
        };
    }

    /** The {@code unique} filter: drops a term seen before (in the stream, or at the same position only). */
    static final class UniqueFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final PositionIncrementAttribute position = addAttribute(PositionIncrementAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);
        private final boolean onlyOnSamePosition;

        UniqueFilter(TokenStream in, boolean onlyOnSamePosition) {
            super(in);
            this.onlyOnSamePosition = onlyOnSamePosition;
        }

        @Override
        public boolean incrementToken() throws IOException {
            while (input.incrementToken()) {
                if (onlyOnSamePosition && position.getPositionIncrement() > 0) {
                    seen.clear();
                }
                if (!seen.contains(term.buffer(), 0, term.length())) {
                    seen.add(Arrays.copyOf(term.buffer(), term.length()));
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }

    /** {@code stemmer_override} rules: {@code "running, runs => run"}. */
    static StemmerOverrideFilter.StemmerOverrideMap stemmerOverrides(List<String> rules) throws IOException {
        StemmerOverrideFilter.Builder builder = new StemmerOverrideFilter.Builder(false);
        for (String rule : rules) {
            String[] sides = rule.split("=>");
            if (sides.length != 2 || sides[1].trim().isEmpty()) {
                throw new IllegalArgumentException("Invalid Keyword override Rule:" + rule);
            }
            String override = sides[1].trim();
            if (override.contains(",")) {
                throw new IllegalArgumentException("Invalid Keyword override Rule:" + rule);
            }
            for (String key : sides[0].split(",")) {
                if (key.trim().isEmpty()) {
                    throw new IllegalArgumentException("Invalid Keyword override Rule:" + rule);
                }
                builder.add(key.trim(), override);
            }
        }
        return builder.build();
    }

    /**
     * The {@code char_group} tokenizer: splits on the characters (or classes: whitespace, letter,
     * digit, punctuation, symbol; escapes \n \t \r \f \\uXXXX) of {@code tokenize_on_chars}.
     */
    static Tokenizer charGroup(List<String> tokenizeOnChars, int maxTokenLength) {
        IntPredicate split = c -> false;
        for (String spec : tokenizeOnChars) {
            IntPredicate one = switch (spec.toLowerCase(Locale.ROOT)) {
                case "whitespace" -> Character::isWhitespace;
                case "letter" -> Character::isLetter;
                case "digit" -> Character::isDigit;
                case "punctuation" -> c -> switch (Character.getType(c)) {
                    case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                        Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                        Character.OTHER_PUNCTUATION -> true;
                    default -> false;
                };
                case "symbol" -> c -> switch (Character.getType(c)) {
                    case Character.MATH_SYMBOL, Character.CURRENCY_SYMBOL, Character.MODIFIER_SYMBOL, Character.OTHER_SYMBOL -> true;
                    default -> false;
                };
                default -> {
                    int ch = singleChar(spec);
                    yield c -> c == ch;
                }
            };
            split = split.or(one);
        }
        IntPredicate splitOn = split;
        return new CharTokenizer(TokenStream.DEFAULT_TOKEN_ATTRIBUTE_FACTORY, maxTokenLength) {
            @Override
            protected boolean isTokenChar(int c) {
                return !splitOn.test(c);
            }
        };
    }

    private static int singleChar(String spec) {
        if (spec.codePointCount(0, spec.length()) == 1) {
            return spec.codePointAt(0);
        }
        if (spec.startsWith("\\")) {
            switch (spec) {
                case "\\n": return '\n';
                case "\\r": return '\r';
                case "\\t": return '\t';
                case "\\f": return '\f';
                case "\\b": return '\b';
                case "\\\\": return '\\';
                default:
                    if (spec.startsWith("\\u") && spec.length() == 6) {
                        return Integer.parseInt(spec.substring(2), 16);
                    }
            }
        }
        throw new IllegalArgumentException("Invalid escaped char in [" + spec + "]");
    }
}

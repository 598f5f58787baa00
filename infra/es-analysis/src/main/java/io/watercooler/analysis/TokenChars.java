package io.watercooler.analysis;

import org.elasticsearch.common.settings.Settings;

import java.util.List;
import java.util.Locale;
import java.util.function.IntPredicate;

/** The {@code token_chars} (and {@code custom_token_chars}) of the n-gram tokenizers: empty keeps every character. */
final class TokenChars {
    private final IntPredicate predicate;

    private TokenChars(IntPredicate predicate) {
        this.predicate = predicate;
    }

    boolean matches(int codePoint) {
        return predicate.test(codePoint);
    }

    static TokenChars parse(Settings params) {
        List<String> classes = Components.list(params, "token_chars");
        if (classes.isEmpty()) {
            return new TokenChars(c -> true);
        }
        IntPredicate any = c -> false;
        for (String name : classes) {
            IntPredicate one = switch (name.toLowerCase(Locale.ROOT)) {
                case "letter" -> Character::isLetter;
                case "digit" -> Character::isDigit;
                case "whitespace" -> Character::isWhitespace;
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
                case "custom" -> {
                    String custom = params.get("custom_token_chars");
                    if (custom == null) {
                        throw new IllegalArgumentException("Token type: [custom] requires setting `custom_token_chars`");
                    }
                    yield c -> custom.codePoints().anyMatch(k -> k == c);
                }
                default -> throw new IllegalArgumentException("Unknown token type: '" + name + "', must be one of [symbol, "
                    + "custom, whitespace, letter, punctuation, digit]");
            };
            any = any.or(one);
        }
        return new TokenChars(any);
    }
}

// Sends identify, track, page, screen, group and alias with analytics-java
// to the collector at args[0] (write key args[1], user args[2]), waits for
// the SDK to report every message delivered, and exits non-zero otherwise.
import com.segment.analytics.Analytics;
import com.segment.analytics.Callback;
import com.segment.analytics.messages.AliasMessage;
import com.segment.analytics.messages.GroupMessage;
import com.segment.analytics.messages.IdentifyMessage;
import com.segment.analytics.messages.Message;
import com.segment.analytics.messages.PageMessage;
import com.segment.analytics.messages.ScreenMessage;
import com.segment.analytics.messages.TrackMessage;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

public class Send {
  public static void main(String[] args) throws Exception {
    String host = args[0], key = args[1], user = args[2];
    CountDownLatch delivered = new CountDownLatch(6);
    AtomicInteger failed = new AtomicInteger();
    Analytics analytics = Analytics.builder(key)
        .endpoint(host)
        .flushQueueSize(3)
        .callback(new Callback() {
          public void success(Message m) { delivered.countDown(); }
          public void failure(Message m, Throwable t) {
            System.err.println("failed: " + m.type() + " " + t);
            failed.incrementAndGet();
            delivered.countDown();
          }
        })
        .build();
    Map<String, Object> context = Map.of(
        "campaign", Map.of("source", "newsletter", "medium", "email", "name", "black_friday", "term", "shoes", "content", "hero"),
        "locale", "de-DE", "timezone", "Europe/Berlin", "ip", "203.0.113.7", "userAgent", "tideline-sdk-test");
    analytics.enqueue(IdentifyMessage.builder().userId(user).anonymousId(user + "-anon").traits(Map.of("plan", "gold")).context(context));
    analytics.enqueue(TrackMessage.builder("purchase").userId(user).properties(Map.of("total", 80, "currency", "EUR")).context(context));
    analytics.enqueue(PageMessage.builder("Pricing").userId(user).context(context));
    analytics.enqueue(ScreenMessage.builder("Checkout").userId(user).context(context));
    analytics.enqueue(GroupMessage.builder(user + "-org").userId(user).traits(Map.of("name", "Acme", "plan", "enterprise")).context(context));
    analytics.enqueue(AliasMessage.builder(user + "-prev").userId(user).context(context));
    analytics.flush();
    boolean done = delivered.await(60, TimeUnit.SECONDS);
    analytics.shutdown();
    if (!done || failed.get() > 0) {
      System.err.println("delivered: " + done + ", failed: " + failed.get());
      System.exit(1);
    }
  }
}

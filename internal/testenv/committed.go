package testenv

import (
	"context"
	"fmt"
	"strings"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CommittedEverything reports whether the loader group named group (as
// loader.group sets it) has committed every web and server partition's end
// offset on br, so nothing would be redelivered and no insert of a record
// produced so far is still to come; while not, it says which partitions are
// behind.
func CommittedEverything(ctx context.Context, br Broker, group string) (bool, string, error) {
	cl, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
	if err != nil {
		return false, "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var behind []string
	for _, lane := range []string{"web", "server"} {
		topic := br.Config.MustTopic(lane)
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false, "", err
		}
		committed, err := adm.FetchOffsets(ctx, br.Config.TopicPrefix+group+"."+lane)
		if err != nil {
			return false, "", err
		}
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, c.At, o.Offset))
			}
		})
	}
	return len(behind) == 0, strings.Join(behind, ", "), nil
}
